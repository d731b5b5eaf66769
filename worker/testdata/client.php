<?php
// Test client: submits one foreground job with PHP's gearman extension and
// prints every callback, one per line.
// usage: php client.php HOST PORT FUNCTION PAYLOAD [exceptions]
[$_, $host, $port, $fn, $payload] = array_slice($argv, 0, 5);
$c = new GearmanClient();
$c->addServer($host, (int)$port);
if (($argv[5] ?? '') === 'exceptions') {
    $c->addOptions(64); // GEARMAN_CLIENT_EXCEPTION: sends OPTION_REQ exceptions
}
$c->setTimeout(20000);
$c->setDataCallback(function ($t) { echo "data:", $t->data(), "\n"; });
$c->setWarningCallback(function ($t) { echo "warning:", $t->data(), "\n"; });
$c->setStatusCallback(function ($t) { echo "status:", $t->taskNumerator(), "/", $t->taskDenominator(), "\n"; });
$c->setCompleteCallback(function ($t) { echo "complete:", $t->data(), "\n"; });
$c->setFailCallback(function ($t) { echo "fail\n"; });
$c->setExceptionCallback(function ($t) { echo "exception:", $t->data(), "\n"; });
$c->addTask($fn, $payload);
if (!$c->runTasks()) {
    echo "error:", $c->error(), "\n";
    exit(1);
}
