<?php
/*
 * gworkerd.php — the PHP runtime for gworkerd's resident handlers.
 *
 *   php gworkerd.php --file PATH --callable NAME [--function GEARMAN_NAME]
 *
 * It loads PATH once, then serves job after job for gworkerd over the
 * "resident protocol, version 1" (jobs/README.md, "Resident handlers"):
 * requests are read from file descriptor 3, replies written to file
 * descriptor 4, both as frames of
 *
 *   1 byte type | 4 bytes body length, unsigned big-endian | body
 *
 * NAME is resolved after loading, in this order:
 *   - a class NAME with a run() method (the GearmanManager class form): it
 *     is instantiated once per process, and ->run($job, $log) is called for
 *     every job;
 *   - a function NAME (GearmanDaemon's fnc_<name>($job) and GearmanManager's
 *     <Function>($job, &$log)): called as NAME($job, $log). PHP ignores
 *     extra arguments to user functions, so both forms take the same call.
 *
 * The job object mirrors pecl/gearman's GearmanJob for what workers use,
 * and follows what pecl/gearman 2.x with libgearman 1.1 do with it (see
 * GworkerdJob::serve() for the details and the few deliberate differences).
 *
 * It needs php-cli (PHP 8.0 or later) only, and runs the same with `php -n`
 * (no gearman extension) and with php-gearman loaded.
 *
 * stdout is not the protocol channel: echo and print in user code go to
 * gworkerd's log like stderr does. PHP's warnings and notices are sent to
 * stderr too (display_errors=stderr).
 *
 * Known limitation: core PHP cannot mark a descriptor close-on-exec, so a
 * program that user code starts (exec, proc_open, ...) inherits fds 3 and
 * 4. It must not touch them, and a long-lived one keeps gworkerd from
 * seeing this handler's fd 4 close when it exits.
 *
 * Everything this file declares is prefixed gworkerd_/Gworkerd, and it
 * keeps only one global variable ($__gworkerd_opts), because PATH is loaded
 * at global scope and shares the global namespace with it.
 */

// Exit statuses. 0: end of file on fd 3 between jobs, as asked.
const GWORKERD_EXIT_PROTOCOL = 1; // fd 3/4 unusable or a malformed frame
const GWORKERD_EXIT_USAGE = 2;    // bad arguments, or PATH cannot serve NAME

// The body limit gworkerd enforces on its side; a longer request is a
// protocol error rather than an allocation of whatever size it claims.
const GWORKERD_MAX_BODY = 64 << 20;

// Frames up to this size are read and written whole, in one system call
// each; larger ones field by field, so that a large workload or result
// is not held twice.
const GWORKERD_SMALL_FRAME = 64 << 10;

// pecl/gearman's gearman_return_t constants that workers pass to
// setReturn() and compare returnCode() with, with libgearman's values
// (checked with php-gearman 2.1.0 on libgearman 1.1). The extension
// defines them when it is loaded.
if (!defined('GEARMAN_SUCCESS')) {
    define('GEARMAN_SUCCESS', 0);
}
if (!defined('GEARMAN_WORK_EXCEPTION')) {
    define('GEARMAN_WORK_EXCEPTION', 23);
}
if (!defined('GEARMAN_WORK_FAIL')) {
    define('GEARMAN_WORK_FAIL', 24);
}

// The highest gearman_return_t libgearman 1.1 knows (GEARMAN_MAX_RETURN);
// setReturn() refuses values outside 0..this, as pecl does.
const GWORKERD_MAX_RETURN = 53;

/*
 * The job object's base class.
 *
 * With the gearman extension loaded, code written for pecl workers may
 * declare its parameter as `function fnc_x(GearmanJob $job)`. Our job
 * object can satisfy that type only by being a GearmanJob, so the base is
 * the extension's class when it exists and is not final. What we found
 * with php-gearman 2.1.0 (PHP 8.2):
 *   - GearmanJob is neither final nor abstract and has no constructor, so
 *     a user class may extend it and declare its own;
 *   - its methods have real (not tentative) return types: returnCode():
 *     ?int, setReturn(int): ?bool, sendData(string): ?bool,
 *     sendWarning/sendStatus/sendComplete/sendException/sendFail(): bool,
 *     handle/functionName/unique(): string|bool, workload(): string,
 *     workloadSize(): ?int. An override must declare a covariant return
 *     type, so GworkerdJob declares int/bool/string on every method;
 *     these are also valid in a class without a parent (php -n) and under
 *     the typeless 1.x extension;
 *   - parameters are left untyped (wider than the extension's, which PHP
 *     allows) and coerced the way a non-strict internal call would
 *     (gworkerd_string_arg(), gworkerd_int_arg());
 *   - GearmanJob's __destruct and its object storage do nothing for an
 *     object the extension did not create from a real libgearman job, and
 *     GworkerdJob overrides every public method, so no native method ever
 *     runs on our objects.
 * Without the extension there is no GearmanJob, so the runtime declares
 * an empty stand-in of that name: code typed `GearmanJob $job` then runs
 * with php-cli alone. (A final GearmanJob from some other extension
 * cannot be extended; a callable typed with it is refused before H by
 * gworkerd_check_param.)
 */
if (!class_exists('GearmanJob', false)) {
    /** A stand-in for pecl/gearman's GearmanJob, declared by gworkerd.php when the extension is not loaded. */
    class GearmanJob
    {
    }
}
if (!(new ReflectionClass('GearmanJob'))->isFinal()) {
    /** @internal */
    abstract class GworkerdJobBase extends GearmanJob
    {
    }
} else {
    /** @internal */
    abstract class GworkerdJobBase
    {
    }
}

/**
 * The $job passed to user code: one per job, as pecl creates one
 * GearmanJob per job.
 */
final class GworkerdJob extends GworkerdJobBase
{
    /** @var resource the reply stream, fd 4 */
    private $out;
    private string $jobHandle;
    private string $jobFunction;
    private string $jobUnique;
    private int $jobAttempt;
    private string $jobWorkload;

    /**
     * pecl's GearmanJob::$ret: GEARMAN_SUCCESS when the callback starts;
     * setReturn() sets it and every send*() resets it to the result of the
     * send (GEARMAN_SUCCESS). Read after the callback returns, like pecl.
     */
    private int $ret = GEARMAN_SUCCESS;

    /**
     * Whether C, F or E was sent: libgearman's job "finished" flag. After
     * it the function's return value is ignored and nothing more is sent.
     */
    private bool $finished = false;

    /** @param resource $out */
    public function __construct($out, string $handle, string $function, string $unique, int $attempt, string $workload)
    {
        $this->out = $out;
        $this->jobHandle = $handle;
        $this->jobFunction = $function;
        $this->jobUnique = $unique;
        $this->jobAttempt = $attempt;
        $this->jobWorkload = $workload;
    }

    public function workload(): string
    {
        return $this->jobWorkload;
    }

    public function workloadSize(): int
    {
        return strlen($this->jobWorkload);
    }

    public function handle(): string
    {
        return $this->jobHandle;
    }

    public function unique(): string
    {
        return $this->jobUnique;
    }

    public function functionName(): string
    {
        return $this->jobFunction;
    }

    /** The run this is, 1 on the first: a gworkerd addition, not in pecl. */
    public function attempt(): int
    {
        return $this->jobAttempt;
    }

    public function returnCode(): int
    {
        return $this->ret;
    }

    /**
     * Sets the code the job ends with when the function returns: pecl
     * completes the job with the return value for GEARMAN_SUCCESS and
     * fails it (WORK_FAIL) for any other code, GEARMAN_WORK_EXCEPTION
     * included (an exception needs sendException() to carry its text).
     */
    public function setReturn($gearman_return_t): bool
    {
        $code = gworkerd_int_arg($gearman_return_t, __METHOD__, 1);
        if ($code < GEARMAN_SUCCESS || $code > GWORKERD_MAX_RETURN) {
            trigger_error(__METHOD__ . "(): Invalid gearman_return_t: $code", E_USER_WARNING);
            return false;
        }
        $this->ret = $code;
        return true;
    }

    public function sendStatus($numerator, $denominator): bool
    {
        $n = gworkerd_int_arg($numerator, __METHOD__, 1);
        $d = gworkerd_int_arg($denominator, __METHOD__, 2);
        // pecl casts both to uint32_t.
        return $this->progress('S', pack('NN', $n & 0xFFFFFFFF, $d & 0xFFFFFFFF));
    }

    public function sendData($data): bool
    {
        return $this->progress('D', gworkerd_string_arg($data, __METHOD__, 1));
    }

    public function sendWarning($warning): bool
    {
        return $this->progress('W', gworkerd_string_arg($warning, __METHOD__, 1));
    }

    public function sendComplete($result): bool
    {
        return $this->finish('C', gworkerd_string_arg($result, __METHOD__, 1));
    }

    public function sendException($exception): bool
    {
        return $this->finish('E', gworkerd_string_arg($exception, __METHOD__, 1));
    }

    public function sendFail(): bool
    {
        return $this->finish('F', '');
    }

    /** Sends an S, D or W frame while the job runs. */
    private function progress(string $type, string $body): bool
    {
        if ($this->finished) {
            // libgearman would still write the packet (the server drops
            // it); here a frame after C/F/E would break the protocol.
            // Reported on stderr directly, not with trigger_error(): an
            // error handler that throws on warnings (as many frameworks
            // install) must not turn our notice into the job's exception.
            gworkerd_stderr("gworkerd.php: ({$this->jobHandle}) the job is over; frame $type dropped" . gworkerd_call_site());
            return false;
        }
        gworkerd_write_frame($this->out, $type, $body);
        $this->ret = GEARMAN_SUCCESS;
        return true;
    }

    /**
     * Sends the job's one C, F or E frame. Once the job is finished, a
     * second one is a no-op that reports success, as libgearman's
     * gearman_job_send_complete_fin/send_fail_fin do.
     */
    private function finish(string $type, string $body): bool
    {
        if (!$this->finished) {
            gworkerd_write_frame($this->out, $type, $body);
            $this->finished = true;
        }
        $this->ret = GEARMAN_SUCCESS;
        return true;
    }

    /**
     * Runs one job: calls the user code with a fresh job object, writes
     * its $log to stderr, and ends the job with exactly one of C, F or E.
     *
     * What pecl/gearman 2.1 (_php_worker_function_callback) and libgearman
     * 1.1 (FunctionV1::callback, gearman_job_send_*_fin) do, and we too:
     *   - a job finished by sendComplete/sendFail/sendException is over:
     *     the return value is ignored and nothing else is sent;
     *   - otherwise the code left by setReturn()/send*() decides:
     *     GEARMAN_SUCCESS completes the job with the return value converted
     *     by PHP's string conversion (convert_to_string): null and false
     *     give "", true "1", numbers their decimal form, an array "Array"
     *     (with PHP's "Array to string conversion" warning, which we
     *     replace with a line of our own; GearmanManager returns whatever
     *     the function returned, so its workers get "Array" too), an
     *     object its __toString(); any other code fails the job.
     * Deliberate differences:
     *   - pecl answers an uncaught exception with WORK_EXCEPTION "Unable to
     *     add worker function" and lets it escape GearmanWorker::work(),
     *     which ends most worker scripts; we send E with the exception's
     *     message (its class name when the message is empty), log it with
     *     its trace to stderr, and keep serving;
     *   - an object without __toString() makes PHP's conversion throw an
     *     Error; pecl completes with "" and the Error escapes work(); we
     *     send E with the Error's message;
     *   - GearmanManager writes $log only when the function returns; we
     *     write it after every job, thrown or not.
     *
     * @param object|null $object the instance for the class form
     * @param string|null $function the function for the function form
     * @param resource $out
     * @param list<string> $fields handle, function, unique, attempt, workload
     */
    public static function serve(?object $object, ?string $function, $out, array $fields): void
    {
        [$handle, $name, $unique, $attempt, $workload] = $fields;
        $job = new self($out, $handle, $name, $unique, (int) $attempt, $workload);
        $log = [];
        $result = null;
        $thrown = null;
        try {
            $result = $object !== null ? $object->run($job, $log) : $function($job, $log);
        } catch (Throwable $e) {
            $thrown = $e;
        }
        gworkerd_write_log($handle, $log);

        if ($thrown !== null) {
            gworkerd_stderr("gworkerd.php: ($handle) uncaught " . (string) $thrown);
            $message = $thrown->getMessage();
            $job->finish('E', $message !== '' ? $message : get_class($thrown));
            return;
        }
        if ($job->finished) {
            return; // the return value is ignored, as in libgearman
        }
        if ($job->ret !== GEARMAN_SUCCESS) {
            $job->finish('F', '');
            return;
        }
        if (is_array($result)) {
            // PHP's own "Array to string conversion" warning would point
            // into this file; say what happened instead, and send what
            // pecl sends.
            gworkerd_stderr("gworkerd.php: ($handle) the function returned an array: sent as \"Array\" (Array to string conversion, as pecl/gearman does)");
            $job->finish('C', 'Array');
            return;
        }
        try {
            $body = (string) $result;
        } catch (Throwable $e) {
            gworkerd_stderr("gworkerd.php: ($handle) cannot convert the result: " . (string) $e);
            $job->finish('E', $e->getMessage());
            return;
        }
        $job->finish('C', $body);
    }
}

/**
 * Coerces an argument meant for a string parameter the way a non-strict
 * call to the extension's method would, so that code behaves alike with
 * and without it: scalars and Stringable objects convert, null converts
 * to "" (PHP deprecates passing null there), anything else is a TypeError.
 */
function gworkerd_string_arg($value, string $method, int $position): string
{
    if (is_string($value)) {
        return $value;
    }
    if (is_scalar($value) || $value === null || (is_object($value) && method_exists($value, '__toString'))) {
        return (string) $value;
    }
    throw new TypeError(sprintf('%s(): Argument #%d must be of type string, %s given', $method, $position, get_debug_type($value)));
}

/** Coerces an argument meant for an int parameter, like gworkerd_string_arg. */
function gworkerd_int_arg($value, string $method, int $position): int
{
    if (is_int($value)) {
        return $value;
    }
    if (is_bool($value) || is_float($value) || (is_string($value) && is_numeric($value))) {
        return (int) $value;
    }
    throw new TypeError(sprintf('%s(): Argument #%d must be of type int, %s given', $method, $position, get_debug_type($value)));
}

/**
 * Returns " (at FILE:LINE)" for the user code that called the job method
 * running now, or "" when it cannot be told.
 */
function gworkerd_call_site(): string
{
    foreach (debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS) as $frame) {
        if (($frame['class'] ?? '') === GworkerdJob::class && isset($frame['file']) && $frame['file'] !== __FILE__) {
            return " (at {$frame['file']}:{$frame['line']})";
        }
    }
    return '';
}

/** Writes one line (or lines) to stderr, gworkerd's log for the function. */
function gworkerd_stderr(string $message): void
{
    fwrite(STDERR, rtrim($message, "\n") . "\n");
}

/**
 * Writes a job's $log to stderr the way GearmanManager's pecl worker logs
 * it: each entry as "(<handle>) <entry>", a scalar one line cut at 256
 * bytes, an array or object as the lines of print_r(). Line breaks inside
 * a scalar entry become spaces, so that an entry stays one log line.
 */
function gworkerd_write_log(string $handle, $log): void
{
    if (!is_array($log)) {
        return; // the function replaced $log with something else
    }
    foreach ($log as $entry) {
        if (is_scalar($entry) || $entry === null) {
            $line = str_replace(["\r\n", "\n", "\r"], ' ', (string) $entry);
            if (strlen($line) > 256) {
                $line = substr($line, 0, 256) . '...(truncated)';
            }
            gworkerd_stderr("($handle) $line");
            continue;
        }
        foreach (explode("\n", trim(print_r($entry, true))) as $line) {
            gworkerd_stderr("($handle) $line");
        }
    }
}

/** Reports a protocol or I/O failure and ends the process. */
function gworkerd_fatal(string $message): void
{
    gworkerd_stderr('gworkerd.php: ' . $message);
    // exit() cannot be caught by user code that wraps send*() calls in
    // catch (Throwable), unlike an exception: the protocol is broken, so
    // the process must end.
    exit(GWORKERD_EXIT_PROTOCOL);
}

/**
 * Writes one frame to fd 4: header, then body, each written fully (a
 * write to a pipe may be short when interrupted).
 *
 * @param resource $out
 */
function gworkerd_write_frame($out, string $type, string $body): void
{
    if (strlen($body) <= GWORKERD_SMALL_FRAME) {
        // One write (one system call) for the frame: a copy is cheap here.
        gworkerd_write_all($out, $type . pack('N', strlen($body)) . $body);
    } else {
        gworkerd_write_all($out, $type . pack('N', strlen($body)));
        gworkerd_write_all($out, $body);
    }
    if (!fflush($out)) {
        gworkerd_fatal('flush fd 4 failed');
    }
}

/** @param resource $out */
function gworkerd_write_all($out, string $data): void
{
    $total = strlen($data);
    $done = 0;
    while ($done < $total) {
        $n = @fwrite($out, $done === 0 ? $data : substr($data, $done));
        if ($n === false || $n === 0) {
            $err = error_get_last();
            gworkerd_fatal('write to fd 4 failed' . ($err !== null ? ': ' . $err['message'] : ''));
        }
        $done += $n;
    }
}

/**
 * Reads exactly $n bytes from fd 3, looping over short reads. Returns null
 * at end of file before the first byte when $eofOk (between frames);
 * end of file anywhere else is a protocol error.
 *
 * @param resource $in
 */
function gworkerd_read_exact($in, int $n, bool $eofOk = false): ?string
{
    $buf = '';
    while (strlen($buf) < $n) {
        // Chunks of at most 1 MiB: fread allocates its length up front.
        $chunk = @fread($in, min($n - strlen($buf), 1 << 20));
        if ($chunk === false) {
            gworkerd_fatal('read from fd 3 failed');
        }
        if ($chunk === '') {
            if (feof($in)) {
                if ($eofOk && $buf === '') {
                    return null;
                }
                gworkerd_fatal(sprintf('end of file on fd 3 inside a frame (%d of %d bytes)', strlen($buf), $n));
            }
            continue;
        }
        $buf .= $chunk;
    }
    return $buf;
}

/**
 * Reads the next request. Returns the J frame's first five fields
 * (handle, function, unique, attempt, workload), or null at end of file
 * between frames.
 *
 * The body is read field by field straight from the stream, so a large
 * workload is held once (not once in the body and again in the field);
 * fields after the fifth, which later protocol versions may add, are read
 * and dropped.
 *
 * @param resource $in
 * @return list<string>|null
 */
function gworkerd_read_job($in): ?array
{
    $header = gworkerd_read_exact($in, 5, true);
    if ($header === null) {
        return null;
    }
    $type = $header[0];
    $length = unpack('N', $header, 1)[1];
    if ($type !== 'J') {
        gworkerd_fatal(sprintf('unexpected frame type 0x%02x on fd 3', ord($type)));
    }
    if ($length > GWORKERD_MAX_BODY) {
        gworkerd_fatal("J frame of $length bytes exceeds the 64 MiB limit");
    }
    if ($length <= GWORKERD_SMALL_FRAME) {
        return gworkerd_parse_job(gworkerd_read_exact($in, $length));
    }
    $fields = [];
    $left = $length;
    for ($i = 0; $i < 5; $i++) {
        if ($left < 4) {
            gworkerd_fatal("J frame has $i fields, want 5");
        }
        $size = unpack('N', gworkerd_read_exact($in, 4))[1];
        $left -= 4;
        if ($size > $left) {
            gworkerd_fatal("J field $i of $size bytes overruns the frame");
        }
        $fields[] = $size === 0 ? '' : gworkerd_read_exact($in, $size);
        $left -= $size;
    }
    while ($left > 0) { // fields of later protocol versions
        $left -= strlen(gworkerd_read_exact($in, min($left, 1 << 20)));
    }
    if (!preg_match('/^[0-9]+$/', $fields[3])) {
        gworkerd_fatal('J attempt field is not a decimal number');
    }
    return $fields;
}

/**
 * Parses the body of a small J frame, read whole: the same checks as
 * gworkerd_read_job's field by field reading.
 *
 * @return list<string>
 */
function gworkerd_parse_job(string $body): array
{
    $fields = [];
    $at = 0;
    $length = strlen($body);
    for ($i = 0; $i < 5; $i++) {
        if ($length - $at < 4) {
            gworkerd_fatal("J frame has $i fields, want 5");
        }
        $size = unpack('N', $body, $at)[1];
        $at += 4;
        if ($size > $length - $at) {
            gworkerd_fatal("J field $i of $size bytes overruns the frame");
        }
        $fields[] = (string) substr($body, $at, $size);
        $at += $size;
    }
    // Bytes after the fifth field belong to later protocol versions.
    if (!preg_match('/^[0-9]+$/', $fields[3])) {
        gworkerd_fatal('J attempt field is not a decimal number');
    }
    return $fields;
}

/**
 * Parses the command line. Errors end the process with the usage status.
 *
 * @param list<string> $argv
 * @return array{file: string, callable: string, function: string}
 */
function gworkerd_parse_args(array $argv): array
{
    $usage = 'usage: php gworkerd.php --file PATH --callable NAME [--function GEARMAN_NAME]';
    $opts = ['file' => '', 'callable' => '', 'function' => (string) getenv('GEARMAN_FUNCTION')];
    for ($i = 1; $i < count($argv); $i++) {
        $arg = $argv[$i];
        $value = null;
        if (preg_match('/^--(file|callable|function)=(.*)$/s', $arg, $m)) {
            [, $key, $value] = $m;
        } elseif (preg_match('/^--(file|callable|function)$/', $arg, $m) && $i + 1 < count($argv)) {
            $key = $m[1];
            $value = $argv[++$i];
        } else {
            gworkerd_stderr("gworkerd.php: unexpected argument \"$arg\"\n$usage");
            exit(GWORKERD_EXIT_USAGE);
        }
        $opts[$key] = $value;
    }
    if ($opts['file'] === '' || $opts['callable'] === '') {
        gworkerd_stderr("gworkerd.php: --file and --callable are required\n$usage");
        exit(GWORKERD_EXIT_USAGE);
    }
    if (!is_file($opts['file']) || !is_readable($opts['file'])) {
        gworkerd_stderr("gworkerd.php: cannot read {$opts['file']}");
        exit(GWORKERD_EXIT_USAGE);
    }
    return $opts;
}

/**
 * Opens fd 3 or 4. php://fd/N duplicates the descriptor; a missing one
 * (the runtime run by hand) is reported at once instead of at the first
 * read or write.
 *
 * @return resource
 */
function gworkerd_open_fd(int $fd, string $mode)
{
    $stream = @fopen("php://fd/$fd", $mode);
    if ($stream === false) {
        gworkerd_stderr("gworkerd.php: file descriptor $fd is not open: run by gworkerd, which passes requests on fd 3 and takes replies on fd 4");
        exit(GWORKERD_EXIT_USAGE);
    }
    return $stream;
}

/**
 * Refuses, before H, a callable whose first parameter is typed with a
 * class our job object is not: without the gearman extension a
 * `GearmanJob $job` parameter would fail every job with a TypeError.
 */
function gworkerd_check_param(ReflectionFunctionAbstract $fn, string $what): void
{
    $params = $fn->getParameters();
    if ($params === []) {
        return;
    }
    $type = $params[0]->getType();
    if (!$type instanceof ReflectionNamedType || $type->isBuiltin()) {
        return; // untyped, object, mixed, or a union: left to PHP
    }
    $class = $type->getName();
    if (in_array(strtolower($class), ['self', 'static', 'parent'], true) || is_a(GworkerdJob::class, $class, true)) {
        return;
    }
    $hint = strcasecmp($class, 'GearmanJob') === 0
        ? ' (the gearman extension is not loaded: install php-gearman, and do not run php with -n)'
        : '';
    gworkerd_stderr("gworkerd.php: $what takes a $class as its job, which the runtime cannot pass$hint");
    exit(GWORKERD_EXIT_USAGE);
}

/**
 * Resolves NAME after PATH is loaded: a class with run() (instantiated
 * here, once) or else a user function. Returns [object|null, function|null].
 *
 * @return array{0: ?object, 1: ?string}
 */
function gworkerd_resolve(string $file, string $name): array
{
    if (class_exists($name) && method_exists($name, 'run')) {
        $class = new ReflectionClass($name);
        if (!$class->isInstantiable()) {
            gworkerd_stderr("gworkerd.php: class $name in $file cannot be instantiated");
            exit(GWORKERD_EXIT_USAGE);
        }
        gworkerd_check_param(new ReflectionMethod($name, 'run'), "$name::run()");
        try {
            return [new $name(), null];
        } catch (Throwable $e) {
            gworkerd_stderr("gworkerd.php: new $name() failed: " . (string) $e);
            exit(GWORKERD_EXIT_USAGE);
        }
    }
    if (function_exists($name)) {
        $fn = new ReflectionFunction($name);
        if ($fn->isUserDefined()) {
            gworkerd_check_param($fn, "$name()");
            return [null, $fn->getName()];
        }
    }
    gworkerd_stderr("gworkerd.php: $file defines neither function $name nor class $name with run()");
    exit(GWORKERD_EXIT_USAGE);
}

/** Sends H, then serves J frames until end of file on fd 3. */
function gworkerd_main(array $opts): int
{
    [$object, $function] = gworkerd_resolve($opts['file'], $opts['callable']);
    $in = gworkerd_open_fd(3, 'rb');
    $out = gworkerd_open_fd(4, 'wb');
    gworkerd_write_frame($out, 'H', '1 php ' . PHP_VERSION);
    while (($fields = gworkerd_read_job($in)) !== null) {
        GworkerdJob::serve($object, $function, $out, $fields);
    }
    return 0;
}

// Warnings and notices go to stderr, never into the protocol (which has
// its own descriptor anyway) nor to stdout. When errors are also logged
// and no error_log is set, the CLI logs them to stderr as well: turn that
// off so each appears once.
ini_set('display_errors', 'stderr');
ini_set('html_errors', '0');
if ((string) ini_get('error_log') === '') {
    ini_set('log_errors', '0');
}

$__gworkerd_opts = gworkerd_parse_args($argv);

// PATH is loaded here, at global scope, not inside a function: its
// top-level variables must be globals, as they are when a GearmanDaemon or
// GearmanManager worker loads it (`global $db;` in the function).
// A parse error is a ParseError; a compile-time fatal error ends PHP with
// status 255 and its message on stderr. Either way, before H.
try {
    require_once $__gworkerd_opts['file'];
} catch (Throwable $__gworkerd_e) {
    gworkerd_stderr("gworkerd.php: loading {$__gworkerd_opts['file']} failed: " . (string) $__gworkerd_e);
    exit(GWORKERD_EXIT_USAGE);
}

exit(gworkerd_main($__gworkerd_opts));
