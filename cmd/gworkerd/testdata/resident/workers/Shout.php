<?php
// GearmanManager's function form: <Function>($job, &$log).

function Shout($job, &$log)
{
    $log[] = 'shouting ' . $job->workloadSize() . ' bytes';
    return strtoupper($job->workload()) . ' pid ' . getmypid();
}
