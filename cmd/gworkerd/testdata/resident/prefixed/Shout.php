<?php
// GearmanManager's function form with its prefix (function_prefix: gm_):
// Shout.php serves the Gearman function Shout through gm_Shout($job, &$log).

function gm_Shout($job, &$log)
{
    $log[] = 'prefixed shouting ' . $job->workloadSize() . ' bytes';
    return strtoupper($job->workload()) . ' pid ' . getmypid();
}
