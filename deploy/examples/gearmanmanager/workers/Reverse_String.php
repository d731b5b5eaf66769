<?php
// A GearmanManager worker in the function form: the file
// Reverse_String.php defines Reverse_String($job, &$log), and the manager
// registers the Gearman function Reverse_String. Each entry of $log is
// logged after the job.

function Reverse_String($job, &$log)
{
    $workload = $job->workload();
    $log[] = "Received job: " . $job->handle();
    $result = strrev($workload);
    $log[] = "Result: " . $result;
    return $result;
}
