# A job file for the shipped Python runtime: no #! line, not executable.

import os


def fnc_pyseed(job):
    w = job.workload()
    if w == b"throw":
        raise RuntimeError("seed exception from python")
    job.send_status(1, 2)
    job.send_data(b"py half")
    job.send_status(2, 2)
    return b"py:" + w + b" pid " + str(os.getpid()).encode()
