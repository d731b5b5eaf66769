<?php
// The GearmanDaemon layout: job_<name>.php, no #! line, not executable,
// defining fnc_<name>($job). Loaded by jobs/runtime/gworkerd.php.

function fnc_rev($job)
{
    return strrev($job->workload());
}
