package interop

import (
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
)

// httpEnv is a target started with gearmand's HTTP protocol on.
type httpEnv struct {
	tg    target
	srv   *testpeer.Process
	http  string // host:port of the HTTP protocol
	names *names
}

func (e *httpEnv) addr() string { return e.srv.Addr }

// startHTTPTarget starts tg with -r http --http-port <free port>; the
// HTTP port is bound on the -L address like the Gearman port.
func startHTTPTarget(t *testing.T, tg target) *httpEnv {
	t.Helper()
	port := testpeer.FreePort(t)
	srv := tg.start(t, "-r", "http", "--http-port", strconv.Itoa(port))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testpeer.WaitListening(t, addr, wait)
	return &httpEnv{tg: tg, srv: srv, http: addr, names: &names{}}
}

// httpCase is one exchange run on both targets. run checks what the
// target must do and returns the answers, normalized by normalizeHTTP,
// which must then be the same byte for byte on gearmand and gserverd.
type httpCase struct {
	name string
	run  func(t *testing.T, e *httpEnv) string
}

// TestHTTPProtocol checks gearmand's HTTP protocol plugin (-r http
// --http-port): the same raw requests, and the same raw Gearman worker,
// against gearmand 1.1.20 and gserverd; each answer is checked against
// the bytes gearmand sends, and then gearmand's and gserverd's answers are
// compared byte for byte, the job handle's value and the Server header's
// value aside. Checklist: "Optional: TLS on the Gear port; HTTP plugin
// (-r http)". TestHTTPProtocol/run/<target>/<case> runs the exchanges,
// TestHTTPProtocol/same/<case> compares.
func TestHTTPProtocol(t *testing.T) {
	t.Parallel()
	cases := httpCases()
	tgs := targets()
	var mu sync.Mutex
	got := make([]map[string]string, len(tgs)) // per target: case -> answers
	skipped := make([]bool, len(tgs))
	t.Run("run", func(t *testing.T) {
		for i, tg := range tgs {
			got[i] = map[string]string{}
			t.Run(tg.name, func(t *testing.T) {
				t.Parallel()
				defer func() {
					mu.Lock()
					skipped[i] = t.Skipped()
					mu.Unlock()
				}()
				e := startHTTPTarget(t, tg)
				for _, c := range cases {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						out := c.run(t, e)
						mu.Lock()
						got[i][c.name] = out
						mu.Unlock()
					})
				}
			})
		}
	})
	for _, c := range cases {
		t.Run("same/"+c.name, func(t *testing.T) {
			for i, tg := range tgs {
				if skipped[i] {
					testpeer.Missing(t, tg.name, "gearman-job-server")
				}
				if _, ok := got[i][c.name]; !ok {
					t.Fatalf("%s: the exchange failed, nothing to compare", tg.name)
				}
			}
			if a, b := got[0][c.name], got[1][c.name]; a != b {
				t.Errorf("answers differ\n%s: %q\n%s: %q", tgs[0].name, a, tgs[1].name, b)
			}
		})
	}
}

var (
	httpHandleRE = regexp.MustCompile(`X-Gearman-Job-Handle: ([^\r\n]*)\r\n`)
	httpServerRE = regexp.MustCompile(`(?m)^Server: ([^\r\n]*)\r\n`)
)

// normalizeHTTP replaces handle, when given, by <handle> and the Server
// header's value by <server>, after checking the value names the target:
// Gearman/<version> for gearmand, gserverd/<version> for gserverd.
func normalizeHTTP(t *testing.T, e *httpEnv, answer, handle string) string {
	t.Helper()
	if handle != "" {
		answer = strings.ReplaceAll(answer, "X-Gearman-Job-Handle: "+handle+"\r\n", "X-Gearman-Job-Handle: <handle>\r\n")
	}
	for _, m := range httpServerRE.FindAllStringSubmatch(answer, -1) {
		want := "Gearman/1.1."
		if e.tg.gserverd() {
			want = "gserverd/"
		}
		if !strings.HasPrefix(m[1], want) {
			t.Fatalf("Server: %q, want %s...", m[1], want)
		}
	}
	return httpServerRE.ReplaceAllString(answer, "Server: <server>\r\n")
}

// httpDo sends a raw request and reads the answer until the server closes
// the connection (a reset counts as closed: the server may close with the
// client's bytes unread).
func httpDo(addr, req string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	var sb strings.Builder
	_, err = io.Copy(&sb, c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	return sb.String(), err
}

func httpMust(t *testing.T, addr, req string) string {
	t.Helper()
	a, err := httpDo(addr, req)
	if err != nil {
		t.Fatalf("%q: %v (got %q)", req, err, a)
	}
	return a
}

// httpAsync sends a request whose answer waits for a worker.
func httpAsync(addr, req string) <-chan string {
	ch := make(chan string, 1)
	go func() {
		a, err := httpDo(addr, req)
		if err != nil {
			a += "\n(error: " + err.Error() + ")"
		}
		ch <- a
	}()
	return ch
}

// grabQueued waits until fn has n queued jobs, then a worker takes one
// with GRAB_JOB_UNIQ; it returns handle, function, unique, payload.
func grabQueued(t *testing.T, e *httpEnv, w *rawConn, fn string, n int) []string {
	t.Helper()
	want := fn + "\t" + strconv.Itoa(n) + "\t0\t"
	waitFor(t, "the HTTP job to be queued", func() bool { return strings.HasPrefix(statusOf(t, e.addr(), fn), want) })
	w.send(protocol.CanDo, fn)
	w.send(protocol.GrabJobUniq)
	return w.expectType(protocol.JobAssignUniq).args
}

func handleOf(t *testing.T, answer string) string {
	t.Helper()
	m := httpHandleRE.FindStringSubmatch(answer)
	if m == nil || !handleRE.MatchString(m[1]) {
		t.Fatalf("answer %q: want X-Gearman-Job-Handle: H:<host>:<n>", answer)
	}
	return m[1]
}

func httpCases() []httpCase {
	const ok = "HTTP/1.0 200 OK\r\nX-Gearman-Job-Handle: <handle>\r\n"
	return []httpCase{
		// POST /<function>: the body is the workload, the unique "-"; the
		// answer waits for WORK_COMPLETE and carries its payload.
		{name: "Foreground", run: func(t *testing.T, e *httpEnv) string {
			fn := e.names.fn("hfg")
			ans := httpAsync(e.http, "POST /"+fn+" HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
			w := dial(t, e.addr())
			job := grabQueued(t, e, w, fn, 1)
			if job[1] != fn || job[2] != "-" || job[3] != "hello" {
				t.Fatalf("JOB_ASSIGN_UNIQ %q, want function %s, unique -, payload hello", job, fn)
			}
			w.send(protocol.WorkComplete, job[0], "olleh")
			a := normalizeHTTP(t, e, <-ans, job[0])
			if want := ok + "X-Gearman-Command: WORK_COMPLETE\r\nContent-Length: 5\r\nServer: <server>\r\n\r\nolleh"; a != want {
				t.Fatalf("answer\n got %q\nwant %q", a, want)
			}
			return a
		}},
		// GET creates a job with an empty workload (a Content-Length is not
		// read); HEAD answers without X-Gearman-Command. gearmand sends the
		// result after HEAD's head, gserverd does not (HTTP forbids it):
		// only the head is compared.
		{name: "GetAndHead", run: func(t *testing.T, e *httpEnv) string {
			fn := e.names.fn("hget")
			w := dial(t, e.addr())
			var out []string
			for _, m := range []struct{ req, want string }{
				{"GET /" + fn + " HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", ok + "X-Gearman-Command: WORK_COMPLETE\r\nContent-Length: 6\r\nServer: <server>\r\n\r\nRESULT"},
				{"HEAD /" + fn + " HTTP/1.0\r\n\r\n", ok + "Content-Length: 6\r\nServer: <server>\r\n\r\n"},
			} {
				ans := httpAsync(e.http, m.req)
				job := grabQueued(t, e, w, fn, 1)
				if job[3] != "" {
					t.Fatalf("%q: payload %q, want none", m.req, job[3])
				}
				w.send(protocol.WorkComplete, job[0], "RESULT")
				a := normalizeHTTP(t, e, <-ans, job[0])
				if strings.HasPrefix(m.req, "HEAD") {
					body := "RESULT" // gearmand 1.1.20 sends the body
					if e.tg.gserverd() {
						body = ""
					}
					head, ok := strings.CutSuffix(a, body)
					if !ok {
						t.Fatalf("HEAD answer %q: want the body %q", a, body)
					}
					a = head
				}
				if a != m.want {
					t.Fatalf("%q: answer\n got %q\nwant %q", m.req, a, m.want)
				}
				out = append(out, a)
			}
			return strings.Join(out, "|")
		}},
		// X-Gearman-Background: true answers at JOB_CREATED; the job waits
		// in the queue with the unique and workload given.
		{name: "Background", run: func(t *testing.T, e *httpEnv) string {
			fn := e.names.fn("hbg")
			ans := httpMust(t, e.http, "POST /"+fn+" HTTP/1.1\r\nX-Gearman-Background: true\r\nX-Gearman-Unique: bg-u\r\nContent-Length: 6\r\n\r\nbgdata")
			h := handleOf(t, ans)
			if st := statusOf(t, e.addr(), fn); st != fn+"\t1\t0\t0" {
				t.Fatalf("status after the background POST: %q, want 1 queued", st)
			}
			w := dial(t, e.addr())
			job := grabQueued(t, e, w, fn, 1)
			if job[0] != h || job[2] != "bg-u" || job[3] != "bgdata" {
				t.Fatalf("JOB_ASSIGN_UNIQ %q, want %s, unique bg-u, payload bgdata", job, h)
			}
			w.send(protocol.WorkComplete, job[0], "")
			a := normalizeHTTP(t, e, ans, h)
			if want := ok + "X-Gearman-Command: JOB_CREATED\r\nContent-Length: 0\r\nServer: <server>\r\n\r\n"; a != want {
				t.Fatalf("answer\n got %q\nwant %q", a, want)
			}
			return a
		}},
		// X-Gearman-Priority (any case) orders the queue; X-Gearman-Unique
		// coalesces, and so does the same workload without one (unique "-").
		{name: "PriorityAndUnique", run: func(t *testing.T, e *httpEnv) string {
			fn := e.names.fn("hprio")
			post := func(hdr, body string) (string, string) {
				a := httpMust(t, e.http, "POST /"+fn+" HTTP/1.0\r\nX-Gearman-Background: true\r\n"+hdr+
					"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
				h := handleOf(t, a)
				return h, normalizeHTTP(t, e, a, h)
			}
			var out []string
			low, a := post("X-Gearman-Priority: low\r\nX-Gearman-Unique: u-low\r\n", "L")
			out = append(out, a)
			normal, a := post("", "N")
			out = append(out, a)
			high, a := post("x-gearman-priority: HIGH\r\nX-Gearman-Unique: u-high\r\n", "H")
			out = append(out, a)
			if h, a := post("X-Gearman-Unique: u-low\r\n", "other"); h != low {
				t.Fatalf("same X-Gearman-Unique: handle %s, want %s", h, low)
			} else {
				out = append(out, a)
			}
			if h, a := post("", "N"); h != normal {
				t.Fatalf("same workload, no unique: handle %s, want %s", h, normal)
			} else {
				out = append(out, a)
			}
			w := dial(t, e.addr())
			waitFor(t, "3 queued jobs", func() bool { return statusOf(t, e.addr(), fn) == fn+"\t3\t0\t0" })
			w.send(protocol.CanDo, fn)
			for _, want := range [][]string{{high, "u-high", "H"}, {normal, "-", "N"}, {low, "u-low", "L"}} {
				w.send(protocol.GrabJobUniq)
				job := w.expectType(protocol.JobAssignUniq).args
				if job[0] != want[0] || job[2] != want[1] || job[3] != want[2] {
					t.Fatalf("JOB_ASSIGN_UNIQ %q, want handle %s unique %s payload %s", job, want[0], want[1], want[2])
				}
				w.send(protocol.WorkComplete, job[0], "")
			}
			for _, a := range out {
				if want := ok + "X-Gearman-Command: JOB_CREATED\r\nContent-Length: 0\r\nServer: <server>\r\n\r\n"; a != want {
					t.Fatalf("answer\n got %q\nwant %q", a, want)
				}
			}
			return strings.Join(out, "|")
		}},
		// WORK_FAIL: 200 with X-Gearman-Command: WORK_FAIL and no body.
		// gearmand 1.1.20 cuts the last character off the handle (a bug,
		// see server/gearhttp); gserverd sends it whole.
		{name: "WorkFail", run: func(t *testing.T, e *httpEnv) string {
			fn := e.names.fn("hfail")
			ans := httpAsync(e.http, "POST /"+fn+" HTTP/1.1\r\nContent-Length: 1\r\n\r\nx")
			w := dial(t, e.addr())
			job := grabQueued(t, e, w, fn, 1)
			w.send(protocol.WorkFail, job[0])
			h := job[0]
			if !e.tg.gserverd() {
				h = h[:len(h)-1]
			}
			a := normalizeHTTP(t, e, <-ans, h)
			if want := ok + "X-Gearman-Command: WORK_FAIL\r\nContent-Length: 0\r\nServer: <server>\r\n\r\n"; a != want {
				t.Fatalf("answer\n got %q\nwant %q", a, want)
			}
			return a
		}},
		// No function: 404 NOT_FOUND. A method other than GET, HEAD, POST,
		// PUT, an HTTP version other than 1.0 and 1.1, or a request line
		// that does not parse: closed without an answer. None makes a job.
		{name: "BadRequest", run: func(t *testing.T, e *httpEnv) string {
			fn := e.names.fn("hbad")
			var out []string
			for _, m := range []struct{ req, want string }{
				{"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.0 404 NOT_FOUND\r\nServer: <server>\r\nContent-Length: 0\r\n\r\n"},
				{"DELETE /" + fn + " HTTP/1.0\r\n\r\n", ""},
				{"POST /" + fn + " HTTP/2.0\r\nContent-Length: 1\r\n\r\nx", ""},
				{"garbage\r\n\r\n", ""},
			} {
				a := normalizeHTTP(t, e, httpMust(t, e.http, m.req), "")
				if a != m.want {
					t.Fatalf("%q: answer\n got %q\nwant %q", m.req, a, m.want)
				}
				out = append(out, a)
			}
			if st := statusOf(t, e.addr(), fn); st != "" {
				t.Fatalf("a bad request made a job: status %q", st)
			}
			return strings.Join(out, "|")
		}},
	}
}
