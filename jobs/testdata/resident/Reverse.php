<?php
// A GearmanManager function worker: <Function>.php defining
// <Function>($job, &$log). Each entry of $log is logged after the job.

function Reverse($job, &$log)
{
    $log[] = "Received job: " . $job->handle();
    $result = strrev($job->workload());
    $log[] = "Result: " . $result;
    $log[] = ['size' => $job->workloadSize()];
    return $result;
}
