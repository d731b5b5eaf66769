<?php
// Holds its job until the test lets it go: the workload is a directory;
// the job writes its handle to DIR/handle, then waits for DIR/release.

function fnc_hold($job)
{
    $dir = $job->workload();
    file_put_contents($dir . '/handle.tmp', $job->handle());
    rename($dir . '/handle.tmp', $dir . '/handle');
    while (!file_exists($dir . '/release')) {
        usleep(20000);
    }
    return 'released ' . getmypid();
}
