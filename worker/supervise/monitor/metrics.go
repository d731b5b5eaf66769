package monitor

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gworkerd/gworkerd/worker/supervise"
)

var (
	descChildren = prometheus.NewDesc("gworkerd_children",
		"Child slots per function and state.", []string{"function", "state"}, nil)
	descDesired = prometheus.NewDesc("gworkerd_desired_children",
		"Children wanted per function (0 when stopped).", []string{"function"}, nil)
	descRestarts = prometheus.NewDesc("gworkerd_child_restarts_total",
		"Unexpected exits and failed starts of children per function since gworkerd started.", []string{"function"}, nil)
	descJobs = prometheus.NewDesc("gworkerd_jobs_total",
		"Jobs ended per function and outcome (completed, failed, lost: the child died holding it) since gworkerd started.",
		[]string{"function", "outcome"}, nil)
	descDuration = prometheus.NewDesc("gworkerd_job_duration_seconds",
		"Duration of the jobs that reported their end, per function, from the job's start to its end as seen by the master.",
		[]string{"function"}, nil)
	descRSS = prometheus.NewDesc("gworkerd_children_rss_bytes",
		"Resident memory of the children per function.", []string{"function"}, nil)
	descUp = prometheus.NewDesc("gworkerd_supervisor_up",
		"1 when the supervisor answered the scrape.", nil, nil)
)

type collector struct{ m *Monitor }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descChildren, descDesired, descRestarts, descJobs, descDuration, descRSS, descUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.m.opts.Timeout)
	defer cancel()
	st, err := c.m.sup.Status(ctx)
	var ms []supervise.FunctionMetrics
	if err == nil {
		ms, err = c.m.sup.Metrics(ctx)
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	type agg struct {
		byState map[supervise.State]int
		rss     int
	}
	per := map[string]*agg{}
	for _, f := range st.Functions {
		per[f.Function] = &agg{byState: map[supervise.State]int{}}
		ch <- prometheus.MustNewConstMetric(descDesired, prometheus.GaugeValue, float64(f.Desired), f.Function)
	}
	for _, cs := range st.Children {
		a := per[cs.Function]
		if a == nil {
			a = &agg{byState: map[supervise.State]int{}}
			per[cs.Function] = a
		}
		a.byState[cs.State]++
		a.rss += int(cs.RSS)
	}
	for fn, a := range per {
		for s := supervise.StateStopped; s <= supervise.StateFatal; s++ {
			ch <- prometheus.MustNewConstMetric(descChildren, prometheus.GaugeValue, float64(a.byState[s]), fn, s.String())
		}
		ch <- prometheus.MustNewConstMetric(descRSS, prometheus.GaugeValue, float64(a.rss), fn)
	}
	for _, m := range ms {
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(m.Restarts), m.Function)
		for outcome, n := range m.Jobs {
			ch <- prometheus.MustNewConstMetric(descJobs, prometheus.CounterValue, float64(n), m.Function, outcome)
		}
		buckets := make(map[float64]uint64, len(m.Duration.Bounds))
		for i, b := range m.Duration.Bounds {
			buckets[b] = m.Duration.Counts[i]
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, m.Duration.Count, m.Duration.Sum, buckets, m.Function)
	}
}
