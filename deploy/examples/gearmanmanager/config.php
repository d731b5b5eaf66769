<?php
// GearmanManager configuration: pecl-manager.php -c config.php
// (brianlmoon/GearmanManager). The same settings as config.ini: the
// manager requires this file and reads $gearman_config.
// `gworkerd import gearmanmanager config.php` parses it without running it.

$gearman_config = array(

    'GearmanManager' => array(
        // The job servers: host[:port], separated by commas.
        'host' => '10.0.0.1:4730,10.0.0.2',
        // Where the workers live: one <Function>.php file per function.
        'worker_dir' => '/srv/app/workers',
        'include' => '*',
        'exclude' => 'Deprecated_Report',
        // 1 process does every job, every function gets 1 of its own.
        'count' => 1,
        'dedicated_count' => 1,
        'max_worker_lifetime' => 3600,
        'worker_restart_splay' => 300,
        'max_runs_per_worker' => 500,
        'timeout' => 300,
        'user' => 'www-data',
        'pid_file' => '/var/run/gearman-manager.pid',
        'log_file' => '/var/log/gearman-manager.log',
        'auto_update' => true,
    ),

    // At least 3 processes that can reverse, and a longer timeout.
    'Reverse_String' => array(
        'count' => 3,
        'timeout' => 600,
        'priority' => 1,
    ),

    // 2 processes that upper-case and do nothing else.
    'Upper_String' => [
        'dedicated_count' => 2,
        'dedicated_only' => true,
    ],
);
