<?php
// Loops forever when asked to. "hang" always hangs; "hang-once PATH"
// hangs when PATH does not exist yet (creating it first), so that the
// requeued run completes.

function fnc_stuck($job)
{
    $w = $job->workload();
    if ($w === 'pid') {
        return (string) getmypid();
    }
    if ($w === 'hang' || (strncmp($w, 'hang-once ', 10) === 0 && @fopen(substr($w, 10), 'x') !== false)) {
        for (;;) {
            usleep(10000); // stuck, without burning a CPU the test needs
        }
    }
    return 'recovered pid ' . getmypid() . ' attempt ' . $job->attempt();
}
