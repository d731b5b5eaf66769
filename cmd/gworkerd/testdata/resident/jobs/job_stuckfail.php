<?php
// job_stuck.php served again as a second function, configured with
// on_timeout: fail.

require_once __DIR__ . '/job_stuck.php';

function fnc_stuckfail($job)
{
    return fnc_stuck($job);
}
