<?php
// Exits mid-job: "once" exits on the first attempt only and reports the
// attempt and pid that served the retry; "always" exits on every attempt.

function fnc_crash($job)
{
    $w = $job->workload();
    if ($w === 'pid') {
        return (string) getmypid();
    }
    if ($w === 'always' || $job->attempt() === 1) {
        fwrite(STDERR, "crash: exiting mid-job on attempt " . $job->attempt() . "\n");
        exit(3);
    }
    return 'attempt ' . $job->attempt() . ' pid ' . getmypid();
}
