<?php
// A GearmanDaemon-style job file for resident_test.go: no #! line, not
// executable, loaded once by the shipped PHP runtime. The workload says
// what to do; anything else is echoed back.

function fnc_seed($job)
{
    $w = $job->workload();
    switch ($w) {
        case 'pid':
            return (string) getmypid();
        case 'pids': // this process and its parent, from /proc (no posix extension needed)
            $stat = file_get_contents('/proc/self/stat');
            $ppid = explode(' ', substr($stat, strrpos($stat, ')') + 2))[1];
            return getmypid() . ' ' . $ppid;
        case 'grow': // keeps 128 MiB until the process ends
            static $ballast = null;
            ini_set('memory_limit', '-1');
            $ballast = str_repeat('x', 128 << 20);
            return 'grown ' . getmypid();
        case 'progress':
            $job->sendStatus(1, 2);
            $job->sendData('half done');
            $job->sendStatus(2, 2);
            return 'progress complete';
        case 'throw':
            throw new RuntimeException('seed exception from php');
    }
    return 'seed:' . $w;
}
