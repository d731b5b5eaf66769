<?php
// The conformance fixture for jobs/runtime/gworkerd.php: the workload names
// what fnc_conform does, so one resident process runs the whole table of
// jobs/runtime_test.go in order.

// A top-level variable: the runtime must load this file at global scope,
// as GearmanDaemon and GearmanManager do, for `global` to see it.
$conform_greeting = 'hello from global scope';

class ConformStringable
{
    public function __toString(): string
    {
        return 'stringable';
    }
}

function fnc_conform($job)
{
    global $conform_greeting;

    switch ($job->workload()) {
        case 'fields':
            return implode('|', [
                $job->handle(), $job->functionName(), $job->unique(),
                $job->workloadSize(), $job->attempt(), $job->returnCode(),
            ]);
        case 'progress':
            $job->sendStatus(1, 2);
            $job->sendData("d1\0d1");
            $job->sendWarning('w1');
            $job->sendStatus(2, 2);
            return 'done';
        case 'coerce':
            $job->sendData(123);
            $job->sendStatus('3', 4.0);
            return 'coerced';
        case 'complete-then-return':
            $job->sendComplete('early');
            $job->sendComplete('again');
            $job->sendData('too late');
            return 'late';
        case 'fail':
            $job->sendFail();
            return 'ignored';
        case 'setreturn-fail':
            $job->setReturn(GEARMAN_WORK_FAIL);
            return 'ignored';
        case 'setreturn-exception':
            $job->setReturn(GEARMAN_WORK_EXCEPTION);
            return 'ignored';
        case 'setreturn-then-send':
            // pecl: every send resets the return code to GEARMAN_SUCCESS.
            $job->setReturn(GEARMAN_WORK_FAIL);
            $job->sendData('progress');
            return 'completed anyway';
        case 'send-exception':
            $job->sendException('custom failure');
            return 'ignored';
        case 'throw':
            throw new RuntimeException('boom');
        case 'throw-empty':
            throw new LogicException();
        case 'error':
            return conform_undefined_function();
        case 'throw-after-complete':
            $job->sendComplete('finished first');
            throw new RuntimeException('thrown after complete');
        case 'null':
            return null;
        case 'nothing':
            return;
        case 'false':
            return false;
        case 'true':
            return true;
        case 'int':
            return 42;
        case 'float':
            return 1.5;
        case 'array':
            return [1, 2];
        case 'object':
            return new stdClass();
        case 'stringable':
            return new ConformStringable();
        case 'echo':
            echo "conform echo to stdout\n";
            return 'quiet';
        case 'notice':
            $empty = [];
            return 'noticed' . $empty['missing'];
        case 'global':
            return $conform_greeting;
    }
    throw new InvalidArgumentException('unknown command ' . $job->workload());
}
