<?php
// A GearmanManager class worker: <Function>.php defining class <Function>
// with run($job, &$log). The runtime makes one instance per process, so
// its state lives from job to job.

class Counter
{
    public static $instances = 0;
    private $runs = 0;

    public function __construct()
    {
        self::$instances++;
    }

    public function run($job, &$log)
    {
        $this->runs++;
        $log[] = "run {$this->runs}";
        return $this->runs . '/' . self::$instances;
    }
}
