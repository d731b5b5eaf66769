package monitor

import (
	"cmp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gworkerd/gworkerd/server"
)

// Metric descriptions. The gearman_* four are the gauges of the common
// gearman exporter, under its names, so that existing dashboards work.
var (
	descQueued = prometheus.NewDesc("gserverd_function_queued_jobs",
		"Jobs queued (not running) per function and priority.", []string{"function", "priority"}, nil)
	descFnRunning = prometheus.NewDesc("gserverd_function_running_jobs",
		"Jobs assigned to a worker per function.", []string{"function"}, nil)
	descFnWorkers = prometheus.NewDesc("gserverd_function_workers",
		"Connections that can do the function.", []string{"function"}, nil)
	descConnections = prometheus.NewDesc("gserverd_connections",
		"Open Gearman connections.", nil, nil)
	descJobs = prometheus.NewDesc("gserverd_jobs",
		"Jobs in memory (queued, waiting and running).", nil, nil)
	descRunning = prometheus.NewDesc("gserverd_running_jobs",
		"Jobs assigned to a worker, all functions.", nil, nil)
	descFunctions = prometheus.NewDesc("gserverd_functions",
		"Functions the server knows; the busiest have their own series, the others are summed as function=\"_other\".", nil, nil)

	descSubmitted  = counterDesc("submitted", "Jobs created (coalesced submits not counted).")
	descCompleted  = counterDesc("completed", "Jobs ended by WORK_COMPLETE.")
	descFailed     = counterDesc("failed", "Jobs ended by WORK_FAIL or WORK_EXCEPTION, or dropped at the retry limit.")
	descExceptions = counterDesc("exceptions", "WORK_EXCEPTION packets (jobs also counted as failed).")
	descRequeued   = counterDesc("requeued", "Jobs put back after a worker left, CANT_DO or a timeout.")
	descTimedOut   = counterDesc("timed_out", "CAN_DO_TIMEOUT expiries.")
	descDropped    = counterDesc("dropped", "Jobs dropped at the retry limit.")
	descRefusedMem = counterDesc("refused_memory", "Submits refused with QUEUE_ERROR by the queue memory bound.")
	descQueueMem   = prometheus.NewDesc("gserverd_queue_memory_bytes",
		"Memory of the jobs the server holds (payload, unique, overhead), as --max-queue-memory counts it.", nil, nil)
	descMaxQueueMem = prometheus.NewDesc("gserverd_max_queue_memory_bytes",
		"The queue memory bound (--max-queue-memory); 0 means unlimited.", nil, nil)

	descOldest = prometheus.NewDesc("gserverd_function_oldest_queued_seconds",
		"Age of the oldest queued (due, not running) job per function; 0 when none waits.", []string{"function"}, nil)
	descMaxQueue = prometheus.NewDesc("gserverd_function_max_queue",
		"maxqueue limit per function and priority; 0 means unlimited.", []string{"function", "priority"}, nil)
	descWait = prometheus.NewDesc("gserverd_job_wait_seconds",
		"Time jobs waited in the queue before a worker took them, per function.", []string{"function"}, nil)
	descRun = prometheus.NewDesc("gserverd_job_run_seconds",
		"Time from assignment to WORK_COMPLETE, WORK_FAIL or WORK_EXCEPTION, per function.", []string{"function"}, nil)
	descStoreLatency = prometheus.NewDesc("gserverd_store_write_seconds",
		"Duration of persistent store writes, per operation (add, delete).", []string{"op"}, nil)
	descStoreBatch = prometheus.NewDesc("gserverd_store_batch_jobs",
		"Jobs per persistent store write, per operation (add, delete).", []string{"op"}, nil)
	descStoreErrors = prometheus.NewDesc("gserverd_store_errors_total",
		"Failed persistent store writes, per operation (add, delete).", []string{"op"}, nil)

	descFleetMembers = prometheus.NewDesc("gserverd_fleet_members",
		"Members with a lease row in the fleet's table, this one included.", nil, nil)
	descFleetFenced = prometheus.NewDesc("gserverd_fleet_fenced",
		"1 while this member's lease is not confirmed (its stored jobs are not served), else 0.", nil, nil)
	descFleetClaims = prometheus.NewDesc("gserverd_fleet_claims_total",
		"Claims of an expired member's jobs made by this member.", nil, nil)
	descFleetClaimed = prometheus.NewDesc("gserverd_fleet_claimed_jobs_total",
		"Stored jobs this member claimed (from expired members, or owned by none).", nil, nil)
	descFleetLost = prometheus.NewDesc("gserverd_fleet_lease_lost_total",
		"Times this member found its lease claimed by another member.", nil, nil)
	descFleetTakeover = prometheus.NewDesc("gserverd_fleet_last_takeover_seconds",
		"For this member's latest claim that has served a job: seconds from the dead member's lease expiry to the first claimed job handed to a worker.", nil, nil)

	descBuildInfo = prometheus.NewDesc("gserverd_build_info",
		"Always 1; the labels are the version of gserverd and the Go release that built it.", []string{"version", "goversion"}, nil)

	descGearmanJobs = prometheus.NewDesc("gearman_jobs",
		"Jobs queued or running per function (gearman exporter).", []string{"function"}, nil)
	descGearmanRunning = prometheus.NewDesc("gearman_jobs_running",
		"Jobs running per function (gearman exporter).", []string{"function"}, nil)
	descGearmanWaiting = prometheus.NewDesc("gearman_jobs_waiting",
		"Jobs waiting per function (gearman exporter).", []string{"function"}, nil)
	descGearmanWorkers = prometheus.NewDesc("gearman_workers",
		"Workers per function (gearman exporter).", []string{"function"}, nil)
)

func counterDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("gserverd_jobs_"+name+"_total", help, nil, nil)
}

// collector reads server.Stats at scrape time.
type collector struct{ m *Monitor }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descQueued, descFnRunning, descFnWorkers, descConnections, descJobs, descRunning, descFunctions,
		descSubmitted, descCompleted, descFailed, descExceptions, descRequeued, descTimedOut, descDropped,
		descRefusedMem, descQueueMem, descMaxQueueMem,
		descGearmanJobs, descGearmanRunning, descGearmanWaiting, descGearmanWorkers,
		descOldest, descMaxQueue, descWait, descRun, descStoreLatency, descStoreBatch, descStoreErrors,
		descFleetMembers, descFleetFenced, descFleetClaims, descFleetClaimed, descFleetLost, descFleetTakeover,
		descBuildInfo,
	} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, c.m.opts.Version, runtime.Version())
	c.m.mu.RLock()
	src := c.m.src
	c.m.mu.RUnlock()
	if src == nil {
		return // replay still running: no figures yet
	}
	collectStats(ch, src.Stats(), time.Now(), c.m.opts.MetricsFunctions)
}

// OtherFunctions is the function label of the series that sums the
// functions beyond Options.MetricsFunctions. A function of that very
// name is always summed there.
const OtherFunctions = "_other"

// busiest splits fns into the n busiest, in their order in fns, and the
// others. Busy is the jobs a function has had: those its workers took
// (the wait histogram's count) and those queued now; ties go to more
// workers, then to the lesser name. The ranking is by what the server
// did, not by what it holds at this instant, so the same functions keep
// their series from one scrape to the next.
func busiest(fns []server.FunctionStats, n int) (top, rest []server.FunctionStats) {
	if len(fns) <= n && !slices.ContainsFunc(fns, func(f server.FunctionStats) bool { return f.Name == OtherFunctions }) {
		return fns, nil
	}
	jobs := func(f *server.FunctionStats) uint64 { return f.Wait.Count + uint64(f.High+f.Normal+f.Low) }
	idx := make([]int, 0, len(fns))
	for i := range fns {
		if fns[i].Name != OtherFunctions {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		fa, fb := &fns[a], &fns[b]
		if c := cmp.Compare(jobs(fb), jobs(fa)); c != 0 {
			return c
		}
		if c := cmp.Compare(fb.Workers, fa.Workers); c != 0 {
			return c
		}
		return strings.Compare(fa.Name, fb.Name)
	})
	keep := make([]bool, len(fns))
	for _, i := range idx[:min(n, len(idx))] {
		keep[i] = true
	}
	top = make([]server.FunctionStats, 0, min(n, len(fns)))
	rest = make([]server.FunctionStats, 0, len(fns)-len(top))
	for i := range fns {
		if keep[i] {
			top = append(top, fns[i])
		} else {
			rest = append(rest, fns[i])
		}
	}
	return top, rest
}

// sumFunctions sums fns into one FunctionStats named OtherFunctions: the
// jobs, workers and histograms added, the oldest queued job the oldest
// of all, MaxQueue left zero (a sum of limits means nothing).
func sumFunctions(fns []server.FunctionStats) server.FunctionStats {
	o := server.FunctionStats{Name: OtherFunctions}
	for _, f := range fns {
		o.High += f.High
		o.Normal += f.Normal
		o.Low += f.Low
		o.Running += f.Running
		o.Workers += f.Workers
		if !f.OldestQueued.IsZero() && (o.OldestQueued.IsZero() || f.OldestQueued.Before(o.OldestQueued)) {
			o.OldestQueued = f.OldestQueued
		}
		o.Wait = addHistogram(o.Wait, f.Wait)
		o.Run = addHistogram(o.Run, f.Run)
	}
	return o
}

// addHistogram returns a+b; a histogram with other bounds than the sum's
// adds only to its count and sum.
func addHistogram(a, b server.Histogram) server.Histogram {
	if a.Bounds == nil {
		a.Bounds = b.Bounds
		a.Counts = make([]uint64, len(b.Bounds))
	}
	if slices.Equal(a.Bounds, b.Bounds) {
		for i := range min(len(a.Counts), len(b.Counts)) {
			a.Counts[i] += b.Counts[i]
		}
	}
	a.Count += b.Count
	a.Sum += b.Sum
	return a
}

// collectStats sends the metrics of st: per function for the n busiest,
// the others summed as function="_other".
func collectStats(ch chan<- prometheus.Metric, st server.Stats, now time.Time, n int) {
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descConnections, st.Connections)
	gauge(descJobs, st.Jobs)
	gauge(descRunning, st.Running)
	counter(descSubmitted, st.Submitted)
	counter(descCompleted, st.Completed)
	counter(descFailed, st.Failed)
	counter(descExceptions, st.Exceptions)
	counter(descRequeued, st.Requeued)
	counter(descTimedOut, st.TimedOut)
	counter(descDropped, st.Dropped)
	counter(descRefusedMem, st.RefusedMemory)
	gauge(descQueueMem, int(st.QueueMemory))
	gauge(descMaxQueueMem, int(st.MaxQueueMemory))
	gauge(descFunctions, len(st.Functions))
	top, rest := busiest(st.Functions, n)
	if len(rest) > 0 {
		top = append(top, sumFunctions(rest))
	}
	for _, f := range top {
		gauge(descQueued, f.High, f.Name, "high")
		gauge(descQueued, f.Normal, f.Name, "normal")
		gauge(descQueued, f.Low, f.Name, "low")
		gauge(descFnRunning, f.Running, f.Name)
		gauge(descFnWorkers, f.Workers, f.Name)
		waiting := f.High + f.Normal + f.Low
		gauge(descGearmanJobs, waiting+f.Running, f.Name)
		gauge(descGearmanRunning, f.Running, f.Name)
		gauge(descGearmanWaiting, waiting, f.Name)
		gauge(descGearmanWorkers, f.Workers, f.Name)
		var age float64
		if !f.OldestQueued.IsZero() {
			age = max(0, now.Sub(f.OldestQueued).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age, f.Name)
		if f.Name != OtherFunctions {
			for i, p := range []string{"high", "normal", "low"} {
				gauge(descMaxQueue, f.MaxQueue[i], f.Name, p)
			}
		}
		ch <- constHistogram(descWait, f.Wait, f.Name)
		ch <- constHistogram(descRun, f.Run, f.Name)
	}
	if st.Store != nil {
		for _, op := range []struct {
			name string
			s    server.StoreOpStats
		}{{"add", st.Store.Add}, {"delete", st.Store.Delete}} {
			ch <- constHistogram(descStoreLatency, op.s.Latency, op.name)
			ch <- constHistogram(descStoreBatch, op.s.Batch, op.name)
			ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(op.s.Errors), op.name)
		}
	}
	if fl := st.Fleet; fl != nil {
		fenced := 0.0
		if fl.Fenced {
			fenced = 1
		}
		ch <- prometheus.MustNewConstMetric(descFleetMembers, prometheus.GaugeValue, float64(len(fl.Members)))
		ch <- prometheus.MustNewConstMetric(descFleetFenced, prometheus.GaugeValue, fenced)
		ch <- prometheus.MustNewConstMetric(descFleetClaims, prometheus.CounterValue, float64(fl.ClaimsTotal))
		ch <- prometheus.MustNewConstMetric(descFleetClaimed, prometheus.CounterValue, float64(fl.ClaimedJobs))
		ch <- prometheus.MustNewConstMetric(descFleetLost, prometheus.CounterValue, float64(fl.LeaseLost))
		for i := len(fl.Claims) - 1; i >= 0; i-- {
			if d := fl.Claims[i].Takeover; d > 0 {
				ch <- prometheus.MustNewConstMetric(descFleetTakeover, prometheus.GaugeValue, d.Seconds())
				break
			}
		}
	}
}

// constHistogram turns a server.Histogram (per-bucket counts) into a
// Prometheus histogram (cumulative counts).
func constHistogram(d *prometheus.Desc, h server.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cum uint64
	for i, b := range h.Bounds {
		if i < len(h.Counts) {
			cum += h.Counts[i]
		}
		buckets[b] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets, labels...)
}
