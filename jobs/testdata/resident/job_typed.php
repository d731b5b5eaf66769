<?php
// A pecl-style worker that declares its parameter as GearmanJob. It runs
// with the gearman extension loaded and without it (php -n), where the
// runtime declares a stand-in GearmanJob.

function fnc_typed(GearmanJob $job)
{
    return ($job instanceof GearmanJob ? 'GearmanJob ' : 'other ') . strrev($job->workload());
}
