<?
// job_strrev.php serves the Gearman function "strrev" exactly as a
// GearmanDaemon (seed 001) job file does: no shebang, not executable, the
// short open tag, one function fnc_<name>($job) whose return value is the
// result. gworkerd loads it once per child into its PHP runtime
// (jobs/runtime/gworkerd.php) and calls it for every job.
function fnc_strrev($job) {
  $job->sendStatus(1, 1);
  return strrev($job->workload());
}
?>
