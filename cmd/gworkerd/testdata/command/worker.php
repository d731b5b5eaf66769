<?php
// An existing worker program as a PHP application ships it: a pecl
// GearmanWorker loop that connects to the job servers itself. gworkerd
// runs it as a command function (functions.<name>.command).
//
// Usage: php worker.php FUNCTION [SERVERS [TAG]]
//
// It connects to the servers of GEARMAN_SERVERS (host:port,...), or of
// SERVERS (the {servers} placeholder) when that is unset, and registers
// FUNCTION. A job's result is JSON: the workload reversed, this
// process's pid, what reached it in GEARMAN_SERVERS and in SERVERS, and
// TAG. Some workloads do more:
//   spawn    start `sleep 1000` twice: once with proc_open (a child it
//            keeps) and once in the background of a shell (an orphan in
//            its process group); the result's "spawned" holds both pids
//   grow:N   after the job, take N MiB more memory, touched, and keep it
//            (a leak between jobs: it holds no job when gworkerd sees it)
//   say:TEXT write TEXT to stdout and to stderr
// It writes "worker.php ready" to stdout once registered.

$function = $argv[1] ?? '';
$arg = $argv[2] ?? '';
$tag = $argv[3] ?? '';
$env = getenv('GEARMAN_SERVERS');
$servers = $env !== false && $env !== '' ? $env : $arg;
if ($function === '' || $servers === '') {
    fwrite(STDERR, "usage: php worker.php FUNCTION [SERVERS [TAG]] (or GEARMAN_SERVERS)\n");
    exit(2);
}

$w = new GearmanWorker();
foreach (explode(',', $servers) as $s) {
    $s = trim($s);
    $i = strrpos($s, ':');
    $host = $i === false ? $s : substr($s, 0, $i);
    $port = $i === false ? 4730 : (int)substr($s, $i + 1);
    $w->addServer($host, $port);
}

$kept = [];  // proc_open handles: a handle freed waits for its process
$hoard = []; // memory kept by grow:N
$grow = 0;   // MiB to take once the job is done

$w->addFunction($function, function (GearmanJob $job) use (&$kept, &$grow, $env, $arg, $tag) {
    $data = $job->workload();
    $out = [
        'pid' => getmypid(),
        'result' => strrev($data),
        'env' => $env === false ? null : $env,
        'arg' => $arg,
        'tag' => $tag,
    ];
    if ($data === 'spawn') {
        $null = ['file', '/dev/null', 'r'];
        $sink = ['file', '/dev/null', 'w'];
        $p = proc_open(['sleep', '1000'], [0 => $null, 1 => $sink, 2 => $sink], $pipes);
        $kept[] = $p;
        $orphan = trim((string)shell_exec('sleep 1000 </dev/null >/dev/null 2>&1 & echo $!'));
        $out['spawned'] = [proc_get_status($p)['pid'], (int)$orphan];
    } elseif (strncmp($data, 'grow:', 5) === 0) {
        $grow += (int)substr($data, 5);
    } elseif (strncmp($data, 'say:', 4) === 0) {
        $text = substr($data, 4);
        echo "stdout says $text\n";
        fwrite(STDERR, "stderr says $text\n");
    }
    return json_encode($out);
});

echo "worker.php ready\n";
while ($w->work()) {
    // work() returns once a job's result is sent.
    if ($grow > 0) {
        $hoard[] = str_repeat('x', $grow << 20);
        $grow = 0;
    }
}
fwrite(STDERR, 'worker.php: ' . $w->error() . "\n");
exit(1);
