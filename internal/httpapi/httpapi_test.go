package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sirupsen/logrus"
)

func TestBearerAuth(t *testing.T) {
	ran := 0
	h := BearerAuth("s3cret", "test", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { ran++ }))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"", 401}, {"Bearer nope", 401}, {"Basic czNjcmV0", 401}, {"bearer s3cret", 401}, {"Bearer s3cret", 200},
	} {
		req, _ := http.NewRequest("POST", srv.URL, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%q: %d, want %d", tc.auth, resp.StatusCode, tc.code)
		}
		if tc.code == 401 && resp.Header.Get("WWW-Authenticate") != `Bearer realm="test"` {
			t.Errorf("%q: WWW-Authenticate %q", tc.auth, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if ran != 1 {
		t.Errorf("handler ran %d times, want once (with the token)", ran)
	}
	if open := BearerAuth("", "x", http.NotFoundHandler()); open == nil {
		t.Error("no token: nil handler")
	}
}

func TestStatic(t *testing.T) {
	srv := httptest.NewServer(Static(fstest.MapFS{"index.html": {Data: []byte("<p>hi</p>")}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "<p>hi</p>" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("GET /: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, err = http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", resp.StatusCode)
	}
	// The shared files are served beside the page's own.
	for path, want := range map[string]string{"/common/base.css": "--submitted", "/common/dash.js": "window.Dash"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body without %q", path, resp.StatusCode, want)
		}
	}
}

func TestEventStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := NewEventStream(w)
		for i := range 2 {
			if err := s.Send("tick", map[string]int{"n": i}); err != nil {
				return
			}
		}
		if err := s.Send("bad", func() {}); err == nil {
			t.Error("Send of a func: no error")
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("content type %q", ct)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	want := []string{"event: tick", `data: {"n":0}`, "", "event: tick", `data: {"n":1}`, ""}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("stream %q, want %q", lines, want)
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteError(rec, 404, "no such job")
	if rec.Code != 404 || rec.Body.String() != `{"error":"no such job"}`+"\n" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("%d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
}

func TestHostCheck(t *testing.T) {
	t.Parallel()
	c := NewHostCheck("gw.example:4731", []string{"Dash.Example.", "10.1.2.3"}, "--allowed")
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"", true},
		{"127.0.0.1:4731", true},
		{"127.9.9.9", true},
		{"[::1]:4731", true},
		{"10.0.0.5:80", true}, // an address cannot be rebound
		{"localhost:4731", true},
		{"LOCALHOST.", true},
		{"app.localhost:1", true},
		{"gw.example:9", true},
		{"dash.example", true},
		{"DASH.EXAMPLE:443", true},
		{"evil.example:4731", false},
		{"evil.example", false},
		{"localhost.evil.example", false},
		{"gw.example.evil", false},
		{"127.0.0.1.nip.io", false},
	} {
		if got := c.Allowed(tc.host); got != tc.want {
			t.Errorf("Allowed(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	// A wildcard listen address adds no name.
	if NewHostCheck("0.0.0.0:1", nil, "x").Allowed("evil.example") {
		t.Error("wildcard listen: evil.example allowed")
	}

	ran := 0
	srv := httptest.NewServer(c.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran++ })))
	defer srv.Close()
	for _, host := range []string{"evil.example", "localhost"} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/x", nil)
		req.Host = host
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if host == "evil.example" && (resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(body), `evil.example`) || !strings.Contains(string(body), "--allowed")) {
			t.Errorf("Host %s: %d %q, want 421 naming the host and the setting", host, resp.StatusCode, body)
		}
		if host == "localhost" && resp.StatusCode != 200 {
			t.Errorf("Host %s: %d, want 200", host, resp.StatusCode)
		}
	}
	if ran != 1 {
		t.Errorf("handler ran %d times, want once (localhost)", ran)
	}
}

// TestServingStop: Stop lets a request in flight finish within the grace
// period; a stream still open when it ends is closed; Stop returns once
// Serve has.
func TestServingStop(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		fmt.Fprint(w, "done")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // an event stream: only Close ends it
	})
	shutdown := make(chan struct{}, 2)
	serve := func() (*Serving, string) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: mux}
		hs.RegisterOnShutdown(func() { shutdown <- struct{}{} })
		return Serve(hs, ln, logrus.New()), "http://" + ln.Addr().String()
	}

	s, base := serve()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-started
	stopped := make(chan struct{})
	go func() { s.Stop(time.Minute); close(stopped) }()
	// Stop is under way; one that does not wait for the request cuts
	// it, and the reply is an error, not "done".
	select {
	case <-shutdown:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop did not shut the server down")
	}
	close(release)
	if g := <-got; g != "done" {
		t.Errorf("request in flight during Stop got %q, want done", g)
	}
	<-stopped

	s, base = serve()
	resp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s.Stop(10 * time.Millisecond) // returns only once the stream is closed and Serve returned
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the stream ended cleanly; want it cut by Close")
	}
	var none *Serving
	none.Stop(time.Second)
}
