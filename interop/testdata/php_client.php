<?php
// PHP gearman client for the interop suite: runs one MODE and prints one
// JSON object.
// Usage: php php_client.php HOST PORT PREFIX MODE
[$_, $host, $port, $prefix, $mode] = $argv;
$c = new GearmanClient();
$c->addServer($host, (int)$port);
$out = [];
switch ($mode) {
case 'doNormal':
case 'doHigh':
case 'doLow':
    $out['result'] = $c->$mode("$prefix.upper", "hello $mode");
    $out['rc'] = $c->returnCode();
    break;
case 'doBackground':
    $h = $c->doBackground("$prefix.nowork", "bg");
    $out['handle'] = $h;
    $out['status'] = $c->jobStatus($h);
    $out['unknown'] = $c->jobStatus("H:nohost:999999");
    break;
case 'runTasks':
    $ev = [];
    $c->setCompleteCallback(function ($t) use (&$ev) { $ev[] = $t->functionName() . " complete " . $t->data(); });
    $c->setDataCallback(function ($t) use (&$ev) { $ev[] = $t->functionName() . " data " . $t->data(); });
    $c->setWarningCallback(function ($t) use (&$ev) { $ev[] = $t->functionName() . " warning " . $t->data(); });
    $c->setStatusCallback(function ($t) use (&$ev) { $ev[] = $t->functionName() . " status " . $t->taskNumerator() . "/" . $t->taskDenominator(); });
    $c->setFailCallback(function ($t) use (&$ev) { $ev[] = $t->functionName() . " fail"; });
    $c->setExceptionCallback(function ($t) use (&$ev) { $ev[] = $t->functionName() . " exception " . $t->data(); });
    $c->addTask("$prefix.chatty", "x");
    $c->addTask("$prefix.fail", "y");
    $c->addTask("$prefix.exc", "z");
    $ok = $c->runTasks();
    $out['ok'] = $ok;
    $out['events'] = $ev;
    break;
case 'setTimeout':
    $c->setTimeout(500);
    $t0 = microtime(true);
    $r = @$c->doNormal("$prefix.slow", "s");
    $out['elapsed'] = microtime(true) - $t0;
    $out['rc'] = $c->returnCode();
    $out['timeout_rc'] = GEARMAN_TIMEOUT;
    break;
case 'ping':
    $out['ping'] = $c->ping("ping-data");
    break;
default:
    fwrite(STDERR, "unknown mode $mode\n");
    exit(2);
}
$out['success_rc'] = GEARMAN_SUCCESS;
echo json_encode($out), "\n";
