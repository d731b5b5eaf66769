package monitor

import (
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

	descSubmitted  = counterDesc("submitted", "Jobs created (coalesced submits not counted).")
	descCompleted  = counterDesc("completed", "Jobs ended by WORK_COMPLETE.")
	descFailed     = counterDesc("failed", "Jobs ended by WORK_FAIL or dropped at the retry limit.")
	descExceptions = counterDesc("exceptions", "WORK_EXCEPTION packets.")
	descRequeued   = counterDesc("requeued", "Jobs put back after a worker left, CANT_DO or a timeout.")
	descTimedOut   = counterDesc("timed_out", "CAN_DO_TIMEOUT expiries.")
	descDropped    = counterDesc("dropped", "Jobs dropped at the retry limit.")

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
		descQueued, descFnRunning, descFnWorkers, descConnections, descJobs, descRunning,
		descSubmitted, descCompleted, descFailed, descExceptions, descRequeued, descTimedOut, descDropped,
		descGearmanJobs, descGearmanRunning, descGearmanWaiting, descGearmanWorkers,
		descOldest, descMaxQueue, descWait, descRun, descStoreLatency, descStoreBatch, descStoreErrors,
	} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.RLock()
	src := c.m.src
	c.m.mu.RUnlock()
	if src == nil {
		return // replay still running: no figures yet
	}
	collectStats(ch, src.Stats(), time.Now())
}

func collectStats(ch chan<- prometheus.Metric, st server.Stats, now time.Time) {
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
	for _, f := range st.Functions {
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
		for i, p := range []string{"high", "normal", "low"} {
			gauge(descMaxQueue, f.MaxQueue[i], f.Name, p)
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
