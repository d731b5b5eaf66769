<?php
// A GearmanManager worker in the class form: the file Upper_String.php
// defines the class Upper_String with run($job, &$log), and the manager
// registers the Gearman function Upper_String. One instance serves every
// job of a process.

class Upper_String
{
    private $jobs = 0;

    public function run($job, &$log)
    {
        $this->jobs++;
        $log[] = "Job {$this->jobs} of this process: " . $job->handle();
        return strtoupper($job->workload());
    }
}
