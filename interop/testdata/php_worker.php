<?php
// PHP gearman worker for the interop suite.
// Usage: php php_worker.php HOST PORT PREFIX JOBS
// Registers PREFIX.upper, PREFIX.chatty, PREFIX.fail, PREFIX.exc and
// PREFIX.slow, serves JOBS jobs, then exits.
[$_, $host, $port, $prefix, $jobs] = $argv;
$w = new GearmanWorker();
$w->addServer($host, (int)$port);
$w->addFunction("$prefix.upper", function (GearmanJob $job) {
    return strtoupper($job->workload());
});
$w->addFunction("$prefix.chatty", function (GearmanJob $job) {
    $job->sendData("d1");
    $job->sendStatus(1, 2);
    $job->sendWarning("w1");
    $job->sendData("d2");
    return "done:" . $job->workload();
});
$w->addFunction("$prefix.fail", function (GearmanJob $job) {
    $job->sendFail();
    return null;
});
$w->addFunction("$prefix.exc", function (GearmanJob $job) {
    $job->sendException("boom");
    return null;
});
$w->addFunction("$prefix.slow", function (GearmanJob $job) {
    usleep(3000000);
    return "slow";
});
fwrite(STDERR, "ready\n");
for ($i = 0; $i < (int)$jobs; $i++) {
    if (!$w->work()) {
        fwrite(STDERR, "work failed: " . $w->error() . "\n");
        exit(1);
    }
}
