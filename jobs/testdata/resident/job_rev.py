# The GearmanDaemon layout for Python: job_<name>.py, no #! line, not
# executable, defining fnc_<name>(job). Loaded by jobs/runtime/gworkerd.py.


def fnc_rev(job):
    return job.workload()[::-1]
