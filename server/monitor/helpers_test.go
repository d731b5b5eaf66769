package monitor_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	dto "github.com/prometheus/client_model/go"

	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/monitor"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const ioTimeout = 10 * time.Second

// client keeps no idle connection, so no goroutine outlives a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// env is an in-process gserverd on 127.0.0.1:0 with its monitor.
type env struct {
	srv     *server.Server
	mon     *monitor.Monitor
	gearman string // Gearman address
	base    string // "http://127.0.0.1:port"
}

// start starts a server and a monitor; attach false leaves the monitor
// without a source (as during replay).
func start(t *testing.T, opts monitor.Options, attach bool) *env {
	t.Helper()
	return startWith(t, opts, attach, nil)
}

// startWith is start with the server's options changed by mod.
func startWith(t *testing.T, opts monitor.Options, attach bool, mod func(*server.Options)) *env {
	t.Helper()
	so := server.DefaultOptions()
	so.JobHandlePrefix = "H:test"
	if mod != nil {
		mod(&so)
	}
	srv, err := server.New(so)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(gln) }()

	if opts.EventInterval == 0 {
		opts.EventInterval = 50 * time.Millisecond
	}
	mon := monitor.New(opts)
	if attach {
		mon.Attach(srv)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	mdone := make(chan error, 1)
	go func() { mdone <- mon.Serve(hln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		if err := mon.Shutdown(ctx); err != nil {
			t.Errorf("monitor Shutdown: %v", err)
		}
		if err := <-mdone; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("monitor Serve returned %v, want http.ErrServerClosed", err)
		}
		_ = srv.Close()
		if err := <-sdone; !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("server Serve returned %v", err)
		}
	})
	return &env{srv: srv, mon: mon, gearman: gln.Addr().String(), base: "http://" + hln.Addr().String()}
}

// gconn is a raw Gearman connection.
type gconn struct {
	t  *testing.T
	nc net.Conn
	rd *protocol.Reader
}

func (e *env) dial(t *testing.T) *gconn {
	t.Helper()
	nc, err := net.Dial("tcp", e.gearman)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &gconn{t: t, nc: nc, rd: protocol.NewReader(nc, protocol.Limits{})}
}

func (c *gconn) send(typ protocol.Type, args ...string) {
	c.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := protocol.WritePacket(c.nc, protocol.Req, typ, b...); err != nil {
		c.t.Fatalf("write %v: %v", typ, err)
	}
}

// expect reads the next packet, skipping NOOPs, and checks its type.
func (c *gconn) expect(typ protocol.Type) protocol.Packet {
	c.t.Helper()
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(ioTimeout))
		f, err := c.rd.Next()
		if err != nil {
			c.t.Fatalf("read, want %v: %v", typ, err)
		}
		if f.Packet.Type == protocol.Noop {
			continue
		}
		if f.Text || f.Packet.Type != typ {
			c.t.Fatalf("got %v %q, want %v", f.Packet.Type, f.Packet.Args, typ)
		}
		return f.Packet.Clone()
	}
}

// sync waits until the server processed everything sent before.
func (c *gconn) sync() {
	c.t.Helper()
	c.send(protocol.EchoReq, "sync")
	c.expect(protocol.EchoRes)
}

// scrape reads /metrics with the Prometheus text parser.
func (e *env) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := client.Get(e.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metric returns the first metric of the family with all the labels
// ("name=value").
func metric(fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	f, ok := fams[name]
	if !ok {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == k && lp.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns a gauge's or counter's value, or a histogram's sample
// count, of the first metric of the family with all the labels.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	m := metric(fams, name, labels...)
	switch {
	case m == nil:
		return 0, false
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount()), true
	}
	return 0, false
}

// do sends an HTTP request and returns the status and body.
func do(t *testing.T, method, url string, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}
