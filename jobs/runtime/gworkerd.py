"""gworkerd.py - the Python runtime for gworkerd's resident handlers.

    python3 gworkerd.py --file PATH --callable NAME [--function GEARMAN_NAME]

It loads PATH once as a module, then serves job after job for gworkerd over
the "resident protocol, version 1" (jobs/README.md, "Resident handlers"):
requests are read from file descriptor 3, replies written to file
descriptor 4, both as frames of

    1 byte type | 4 bytes body length, unsigned big-endian | body

NAME names, in PATH, either a function called as NAME(job) for every job
(the GearmanDaemon layout: job_<name>.py defining fnc_<name>(job)), or a
class instantiated once per process whose run(job) is called for every job.

The return value is the job's result: bytes as they are, str as UTF-8, None
as empty, anything else as str(value). job.send_complete(), send_fail() and
send_exception() end the job themselves; the return value is then ignored.
An uncaught exception ends the job with WORK_EXCEPTION carrying str(exc)
(the class name when that is empty), its traceback goes to stderr, and the
process goes on serving.

stdout is not the protocol channel: print() in user code goes to gworkerd's
log, like stderr. Only the standard library is used.
"""

import argparse
import importlib.util
import inspect
import os
import struct
import sys
import traceback

# Exit statuses. 0: end of file on fd 3 between jobs, as asked.
EXIT_PROTOCOL = 1  # fd 3/4 unusable or a malformed frame
EXIT_USAGE = 2  # bad arguments, or PATH cannot serve NAME

# The body limit gworkerd enforces on its side; a longer request is a
# protocol error rather than an allocation of whatever size it claims.
MAX_BODY = 64 << 20

_HEADER = struct.Struct(">cI")
_U32 = struct.Struct(">I")


class ProtocolError(BaseException):
    """fd 3 or fd 4 broke the protocol; the process must end.

    A BaseException, so that user code's "except Exception" around a
    send_*() call cannot swallow it and go on writing to a dead channel.
    """


def _stderr(message):
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def _message(exc):
    """The text of an E frame for exc: str(exc), or its class name."""
    try:
        text = str(exc)
    except Exception:
        text = ""
    return (text or type(exc).__name__).encode("utf-8", "surrogateescape")


def _to_bytes(value):
    """Converts a result or a send_*() argument to the bytes sent."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")


class Conn:
    """The two protocol descriptors: requests on fd 3, replies on fd 4."""

    def __init__(self, rfd, wfd):
        # Unbuffered: every read is a read(2), every frame is on the pipe
        # when write_frame returns (S, D and W must reach the client as the
        # job runs, not at its end).
        self._r = os.fdopen(rfd, "rb", buffering=0)
        self._w = os.fdopen(wfd, "wb", buffering=0)

    def read_exact(self, n, eof_ok=False):
        """Reads exactly n bytes, looping over short reads.

        Returns None at end of file before the first byte when eof_ok
        (between frames); end of file anywhere else is a ProtocolError.
        """
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self._r.readinto(view[got:])
            if not k:  # 0 at end of file (None only for non-blocking fds)
                if k is None:
                    continue
                if eof_ok and got == 0:
                    return None
                raise ProtocolError(
                    "end of file on fd 3 inside a frame (%d of %d bytes)" % (got, n))
            got += k
        return bytes(buf)

    def read_job(self):
        """Reads the next J frame.

        Returns its first five fields (handle, function, unique, attempt,
        workload) as bytes, or None at end of file between frames. Fields
        after the fifth, which later protocol versions may add, are read and
        dropped. The body is read field by field, so a large workload is
        held once.
        """
        header = self.read_exact(_HEADER.size, eof_ok=True)
        if header is None:
            return None
        ftype, length = _HEADER.unpack(header)
        if ftype != b"J":
            raise ProtocolError("unexpected frame type %r on fd 3" % ftype)
        if length > MAX_BODY:
            raise ProtocolError("J frame of %d bytes exceeds the 64 MiB limit" % length)
        fields = []
        left = length
        for i in range(5):
            if left < 4:
                raise ProtocolError("J frame has %d fields, want 5" % i)
            (size,) = _U32.unpack(self.read_exact(4))
            left -= 4
            if size > left:
                raise ProtocolError("J field %d of %d bytes overruns the frame" % (i, size))
            fields.append(self.read_exact(size) if size else b"")
            left -= size
        while left > 0:  # fields of later protocol versions
            left -= len(self.read_exact(min(left, 1 << 20)))
        if not fields[3].isdigit():
            raise ProtocolError("J attempt field is not a decimal number")
        return fields

    def write_frame(self, ftype, body=b""):
        """Writes one frame: header, then body, each written fully."""
        self._write_all(_HEADER.pack(ftype, len(body)))
        if body:
            self._write_all(body)

    def _write_all(self, data):
        view = memoryview(data)
        while view:
            try:
                n = self._w.write(view)
            except OSError as e:
                raise ProtocolError("write to fd 4 failed: %s" % e) from None
            if not n:
                raise ProtocolError("write to fd 4 wrote nothing")
            view = view[n:]


class Job:
    """The job passed to user code; one per job."""

    def __init__(self, conn, handle, function, unique, attempt, workload):
        self._conn = conn
        self._handle = handle.decode("utf-8", "surrogateescape")
        self._function = function.decode("utf-8", "surrogateescape")
        self._unique = unique.decode("utf-8", "surrogateescape")
        self._attempt = int(attempt)
        self._workload = workload
        # Whether C, F or E was sent: after it the return value is ignored
        # and nothing more may be sent for this job.
        self._finished = False

    def workload(self):
        """The job's data, as bytes."""
        return self._workload

    def workload_size(self):
        return len(self._workload)

    def handle(self):
        return self._handle

    def unique(self):
        return self._unique

    def function_name(self):
        return self._function

    def attempt(self):
        """The run this is: 1 on the first, more when gworkerd retries."""
        return self._attempt

    def send_status(self, numerator, denominator):
        """Sends WORK_STATUS numerator/denominator (unsigned 32-bit each)."""
        n, d = int(numerator), int(denominator)
        if not (0 <= n <= 0xFFFFFFFF and 0 <= d <= 0xFFFFFFFF):
            raise ValueError("send_status: %d/%d is not two unsigned 32-bit numbers" % (n, d))
        return self._progress(b"S", struct.pack(">II", n, d))

    def send_data(self, data):
        """Sends WORK_DATA: bytes, or str (UTF-8), or str(data)."""
        return self._progress(b"D", _to_bytes(data))

    def send_warning(self, warning):
        """Sends WORK_WARNING."""
        return self._progress(b"W", _to_bytes(warning))

    def send_complete(self, result):
        """Completes the job with result; the return value is then ignored."""
        return self._finish(b"C", _to_bytes(result))

    def send_fail(self):
        """Fails the job (WORK_FAIL); the return value is then ignored."""
        return self._finish(b"F")

    def send_exception(self, message):
        """Fails the job with WORK_EXCEPTION message."""
        return self._finish(b"E", _to_bytes(message))

    def _progress(self, ftype, body):
        if self._finished:
            # A frame after C, F or E would break the protocol.
            caller = sys._getframe(2)  # user code -> send_*() -> _progress()
            _stderr("gworkerd.py: (%s) the job is over; frame %s dropped (at %s:%d)"
                    % (self._handle, ftype.decode(), caller.f_code.co_filename, caller.f_lineno))
            return False
        self._conn.write_frame(ftype, body)
        return True

    def _finish(self, ftype, body=b""):
        # A second C/F/E is a no-op: the job has one outcome.
        if not self._finished:
            self._conn.write_frame(ftype, body)
            self._finished = True
        return True


def serve_job(conn, target, fields):
    """Runs one job and ends it with exactly one of C, F or E."""
    job = Job(conn, *fields)
    try:
        result = target(job)
    except Exception as exc:  # SystemExit and KeyboardInterrupt end the process
        _stderr("gworkerd.py: (%s) uncaught exception:\n%s"
                % (job.handle(), traceback.format_exc()))
        job._finish(b"E", _message(exc))
        return
    if job._finished:
        return  # the return value is ignored
    try:
        body = _to_bytes(result)
    except Exception as exc:  # a __str__ that raises
        _stderr("gworkerd.py: (%s) cannot convert the result:\n%s"
                % (job.handle(), traceback.format_exc()))
        job._finish(b"E", _message(exc))
        return
    job._finish(b"C", body)


def load(path, name):
    """Loads path as a module and returns the callable to run per job.

    A class is instantiated here, once; its bound run method is returned.
    Exits with EXIT_USAGE, before H, when loading fails or NAME is missing.
    """
    path = os.path.abspath(path)
    # Let the job file import its neighbours, as when run as a script.
    sys.path.insert(0, os.path.dirname(path))
    modname = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        _stderr("gworkerd.py: cannot load %s as a Python module" % path)
        sys.exit(EXIT_USAGE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        _stderr("gworkerd.py: loading %s failed:\n%s" % (path, traceback.format_exc()))
        sys.exit(EXIT_USAGE)

    obj = getattr(module, name, None)
    if inspect.isclass(obj) and callable(getattr(obj, "run", None)):
        try:
            instance = obj()
        except Exception:
            _stderr("gworkerd.py: %s() failed:\n%s" % (name, traceback.format_exc()))
            sys.exit(EXIT_USAGE)
        return instance.run
    if obj is not None and not inspect.isclass(obj) and callable(obj):
        return obj
    _stderr("gworkerd.py: %s defines neither function %s nor class %s with run()"
            % (path, name, name))
    sys.exit(EXIT_USAGE)


def open_conn():
    """Opens fds 3 and 4, reporting at once when they are missing."""
    for fd in (3, 4):
        try:
            os.fstat(fd)
        except OSError:
            _stderr("gworkerd.py: file descriptor %d is not open: run by gworkerd, "
                    "which passes requests on fd 3 and takes replies on fd 4" % fd)
            sys.exit(EXIT_USAGE)
        # Programs that user code starts must not inherit the protocol
        # descriptors (os.system does not close them; subprocess does).
        os.set_inheritable(fd, False)
    return Conn(3, 4)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gworkerd.py", description="gworkerd resident runtime")
    parser.add_argument("--file", required=True, help="the job file to load")
    parser.add_argument("--callable", required=True, help="function or class to run per job")
    parser.add_argument("--function", default=os.environ.get("GEARMAN_FUNCTION", ""),
                        help="the Gearman function served (informational; $GEARMAN_FUNCTION by default)")
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    if not os.path.isfile(args.file) or not os.access(args.file, os.R_OK):
        _stderr("gworkerd.py: cannot read %s" % args.file)
        return EXIT_USAGE

    # print() output should reach the log as it happens, not when a block
    # buffer fills.
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except (AttributeError, ValueError):
        pass

    target = load(args.file, args.callable)
    conn = open_conn()
    try:
        conn.write_frame(b"H", ("1 python %d.%d.%d" % sys.version_info[:3]).encode())
        while True:
            fields = conn.read_job()
            if fields is None:
                return 0
            serve_job(conn, target, fields)
    except ProtocolError as e:
        _stderr("gworkerd.py: %s" % e)
        return EXIT_PROTOCOL


if __name__ == "__main__":
    sys.exit(main())
