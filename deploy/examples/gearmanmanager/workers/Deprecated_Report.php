<?php
// A worker the configuration excludes (exclude = Deprecated_Report): the
// manager does not register it.

function Deprecated_Report($job, &$log)
{
    return "this report is no longer served";
}
