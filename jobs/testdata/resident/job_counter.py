# A class handler: the runtime makes one instance per process and calls
# run(job) for each job, so its state lives from job to job.


class Counter:
    instances = 0

    def __init__(self):
        Counter.instances += 1
        self.runs = 0

    def run(self, job):
        self.runs += 1
        return "%d/%d" % (self.runs, Counter.instances)
