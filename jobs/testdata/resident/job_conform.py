# The conformance fixture for jobs/runtime/gworkerd.py: the workload names
# what fnc_conform does, so one resident process runs the whole table of
# jobs/runtime_test.go in order.

import sys

GREETING = "hello from module scope"


class Stringable:
    def __str__(self):
        return "stringable"


def fnc_conform(job):
    cmd = job.workload().decode()
    if cmd == "fields":
        return "|".join(str(v) for v in (
            job.handle(), job.function_name(), job.unique(),
            job.workload_size(), job.attempt()))
    if cmd == "progress":
        job.send_status(1, 2)
        job.send_data(b"d1\0d1")
        job.send_warning("w1")
        job.send_status(2, 2)
        return "done"
    if cmd == "coerce":
        job.send_data(123)
        job.send_status("3", 4)
        return "coerced"
    if cmd == "complete-then-return":
        job.send_complete(b"early")
        job.send_complete(b"again")
        job.send_data(b"too late")
        return "late"
    if cmd == "fail":
        job.send_fail()
        return "ignored"
    if cmd == "send-exception":
        job.send_exception("custom failure")
        return "ignored"
    if cmd == "throw":
        raise RuntimeError("boom")
    if cmd == "throw-empty":
        raise ValueError()
    if cmd == "error":
        return conform_undefined_function()  # noqa: F821 - a NameError on purpose
    if cmd == "throw-after-complete":
        job.send_complete("finished first")
        raise RuntimeError("thrown after complete")
    if cmd in ("null", "nothing"):
        return None
    if cmd == "false":
        return False
    if cmd == "true":
        return True
    if cmd == "int":
        return 42
    if cmd == "float":
        return 1.5
    if cmd == "array":
        return [1, 2]
    if cmd == "stringable":
        return Stringable()
    if cmd == "bytes":
        return b"\x00\xff"
    if cmd == "unicode":
        return "h\u00e9"
    if cmd == "echo":
        print("conform echo to stdout")
        return "quiet"
    if cmd == "notice":
        print("conform warning to stderr", file=sys.stderr)
        return "noticed"
    if cmd == "global":
        return GREETING
    raise ValueError("unknown command " + cmd)
