#!/usr/bin/env php
<?php
// job_shout.php serves the Gearman function "shout" under gworkerd: it
// upper-cases the workload line by line, sending each line as WORK_DATA
// and the progress as WORK_STATUS through file descriptor 3.
$job = getenv('GEARMAN_HANDLE');
$input = stream_get_contents(STDIN);
if ($input === '' || $input === false) {
    fwrite(STDERR, "shout: nothing to shout ($job)\n");
    exit(1);
}
$fd3 = fopen('php://fd/3', 'w');
$lines = explode("\n", rtrim($input, "\n"));
$out = [];
foreach ($lines as $i => $line) {
    $out[] = strtoupper($line);
    fwrite($fd3, "data " . strtoupper($line) . "\n");
    fwrite($fd3, sprintf("status %d %d\n", $i + 1, count($lines)));
    fflush($fd3);
}
fclose($fd3);
echo implode("\n", $out);
