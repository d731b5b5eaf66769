<?php
// Does not parse: the runtime must exit non-zero before saying hello.

function fnc_broken($job)
{
    return $job->workload(
}
