#!/usr/bin/env php
<?php
// The worker section's job, per-job exec (the executable contract of
// jobs/README.md): gworkerd starts this program for every job, with the
// workload on stdin; stdout is the result. gbench writes it out as an
// executable with the #! line naming the PHP it measures.
echo strrev(stream_get_contents(STDIN));
