<?php
// The worker section's baseline: the plain pecl/gearman worker loop that
// PHP shops run today, one process per worker, serving the same job.
//
//   php pecl_rev.php HOST:PORT
$worker = new GearmanWorker();
$worker->addServers($argv[1]);
$worker->addFunction('rev', function (GearmanJob $job) {
    return strrev($job->workload());
});
while ($worker->work()) {
}
fwrite(STDERR, 'pecl_rev.php: ' . $worker->error() . "\n");
exit(1);
