# Does not parse: the runtime must exit non-zero before saying hello.


def fnc_broken(job)
    return job.workload()
