<?php
// A PHP (pecl gearman) worker for the client package's interop tests.
// Usage: php worker.php HOST PORT PREFIX [COUNT]
// It registers PREFIX.events, PREFIX.fail, PREFIX.exception, PREFIX.block
// and PREFIX.echo and exits after COUNT jobs (default: never).
[$script, $host, $port, $prefix] = $argv;
$count = isset($argv[4]) ? (int)$argv[4] : -1;

$w = new GearmanWorker();
$w->addServer($host, (int)$port);

// events: two data chunks, a warning, a status, then the result.
$w->addFunction("$prefix.events", function (GearmanJob $job) {
    $job->sendData("chunk1:");
    $job->sendData("chunk2:");
    $job->sendWarning("careful");
    $job->sendStatus(1, 2);
    return "done:" . $job->workload();
});
// fail: WORK_FAIL.
$w->addFunction("$prefix.fail", function (GearmanJob $job) {
    $job->sendFail();
    $job->setReturn(GEARMAN_WORK_FAIL);
    return null;
});
// exception: WORK_EXCEPTION with a message.
$w->addFunction("$prefix.exception", function (GearmanJob $job) {
    $job->sendException("boom:" . $job->workload());
    $job->setReturn(GEARMAN_WORK_EXCEPTION);
    return null;
});
// block: status 1/2, then wait until the file named by the workload exists.
$w->addFunction("$prefix.block", function (GearmanJob $job) {
    $job->sendStatus(1, 2);
    $path = $job->workload();
    for ($i = 0; $i < 3000 && !file_exists($path); $i++) {
        usleep(10000);
    }
    return "released";
});
// echo: the workload back.
$w->addFunction("$prefix.echo", function (GearmanJob $job) {
    return $job->workload();
});

// work() returns false after a job that failed or threw: keep going
// unless the server is gone.
while ($count != 0) {
    @$w->work();
    $rc = $w->returnCode();
    if ($rc == GEARMAN_COULD_NOT_CONNECT || $rc == GEARMAN_LOST_CONNECTION) {
        exit(1);
    }
    if ($count > 0) {
        $count--;
    }
}
