<?php
// GearmanManager's class form: class <Function> with run($job, &$log).
// One instance per handler process: its count grows from job to job.

class Tally
{
    private $runs = 0;

    public function run($job, &$log)
    {
        $this->runs++;
        $log[] = "run {$this->runs}";
        return $job->workload() . ' run ' . $this->runs . ' pid ' . getmypid();
    }
}
