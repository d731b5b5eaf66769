<?php
// The worker section's job, resident: gworkerd loads this file once per
// child into its PHP runtime (GearmanDaemon layout: no #! line, not
// executable, one function fnc_<name>($job)) and calls it for every job.
function fnc_rev($job)
{
    return strrev($job->workload());
}
