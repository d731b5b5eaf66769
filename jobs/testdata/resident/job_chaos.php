<?php
// Misbehaves on demand, for jobs/resident_test.go: the workload says how.

function fnc_chaos($job)
{
    switch ($job->workload()) {
        case 'pid':
            return (string) getmypid();
        case 'die':
            fwrite(STDERR, "chaos: dying on purpose\n");
            exit(3);
        case 'hang':
            $job->sendStatus(1, 2);
            for (;;) {
                usleep(10000);
            }
        case 'progress':
            $job->sendStatus(1, 3);
            $job->sendData("chunk\0one");
            $job->sendWarning('careful');
            return 'done';
        case 'throw':
            throw new RuntimeException('chaos exception');
    }
    $w = $job->workload();
    if (strncmp($w, 'wait:', 5) === 0) { // until the file exists
        $job->sendStatus(1, 2);
        while (!file_exists(substr($w, 5))) {
            usleep(5000);
        }
        return (string) getmypid();
    }
    if (strncmp($w, 'touch:', 6) === 0) {
        touch(substr($w, 6));
        return (string) getmypid();
    }
    return strrev($job->workload());
}
