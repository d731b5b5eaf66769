<?php
// GearmanManager's class form with its prefix (function_prefix: gm_):
// Tally.php serves the Gearman function Tally through class gm_Tally.
// One instance per handler process: its count grows from job to job.

class gm_Tally
{
    private $runs = 0;

    public function run($job, &$log)
    {
        $this->runs++;
        $log[] = "run {$this->runs}";
        return $job->workload() . ' run ' . $this->runs . ' pid ' . getmypid();
    }
}
