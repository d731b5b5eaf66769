package monitor_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/gworkerd/gworkerd/internal/testpeer"
	"github.com/gworkerd/gworkerd/protocol"
	"github.com/gworkerd/gworkerd/server"
	"github.com/gworkerd/gworkerd/server/monitor"
)

// gclientSubmit submits a background job with the gclient binary and
// returns its handle.
func gclientSubmit(t *testing.T, addr, fn, payload string, flags ...string) string {
	t.Helper()
	args := append([]string{"--servers", addr, "submit", fn, "-"}, flags...)
	gc := exec.Command(testpeer.Binary(t, "gclient"), args...)
	gc.Stdin = strings.NewReader(payload)
	out, err := gc.Output()
	h := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(h, "H:test:") {
		t.Fatalf("gclient submit: %v %q", err, out)
	}
	return h
}

// TestDashboardInChromium loads the dashboard in headless Chromium (token
// given in the URL fragment), submits a job with the page's form, lets a
// raw-protocol worker complete it, sees both counted in the page; then a
// job submitted by the gclient binary appears queued (in the functions
// table and the job search) and finishes; the workers table shows the
// worker; a second gclient job is found by its unique and cancelled with
// the page's button; and it saves a phone-sized screenshot under the
// test's temp dir.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testpeer.Missing(t, "chromium", "chromium")
	}
	e := startWith(t, monitor.Options{Token: "tok", EventInterval: 100 * time.Millisecond}, true,
		func(o *server.Options) { o.JobRetries = 1 })

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915), // a phone
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()

	poll := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(20*time.Second))
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.base+"/#token=tok"),
		poll(`document.getElementById("status").textContent === "live"`),
		chromedp.SetValue(chromedp.CSS("#s-function"), "browserjob"),
		chromedp.SetValue(chromedp.CSS("#s-payload"), "hello"),
		chromedp.Click(chromedp.CSS(`#submit button`)),
		poll(`document.getElementById("t-submitted").textContent === "1" && `+
			`document.querySelector('#functions tr[data-function="browserjob"]') !== null`),
	); err != nil {
		t.Fatalf("load and submit: %v", err)
	}
	st := e.srv.Stats()
	if st.Submitted != 1 || len(st.Functions) != 1 || st.Functions[0].Name != "browserjob" {
		t.Fatalf("server after the page's submit: %+v", st)
	}
	w := e.dial(t)
	w.send(protocol.CanDo, "browserjob")
	w.send(protocol.GrabJobUniq)
	p := w.expect(protocol.JobAssignUniq)
	if string(p.Arg(3)) != "hello" {
		t.Errorf("payload %q, want hello", p.Arg(3))
	}
	w.send(protocol.WorkComplete, string(p.Arg(0)), "")
	if err := chromedp.Do(ctx,
		poll(`document.getElementById("t-completed").textContent === "1"`),
	); err != nil {
		t.Fatalf("completed job not shown: %v", err)
	}
	// A job submitted by gclient appears in the page, then finishes.
	gcHandle := gclientSubmit(t, e.gearman, "gcjob", "from gclient")
	if err := chromedp.Do(ctx,
		poll(`document.getElementById("t-submitted").textContent === "2" && `+
			`document.querySelector('#functions tr[data-function="gcjob"] td:nth-child(3)')?.textContent === "1"`),
		// The job search lists it, queued.
		chromedp.SetValue(chromedp.CSS("#j-function"), "gcjob"),
		chromedp.Click(chromedp.CSS(`#jobs-form button`)),
		poll(`document.querySelector('#jobs tr[data-handle="`+gcHandle+`"] td:nth-child(5)')?.textContent === "queued"`),
		// The worker that took browserjob shows in the workers table.
		poll(`[...document.querySelectorAll('#workers tbody tr')].some(r => r.textContent.includes("browserjob"))`),
	); err != nil {
		t.Fatalf("gclient's job not shown queued: %v", err)
	}
	w.send(protocol.CanDo, "gcjob")
	w.send(protocol.GrabJobUniq)
	p = w.expect(protocol.JobAssignUniq)
	if string(p.Arg(3)) != "from gclient" {
		t.Errorf("payload %q, want the gclient one", p.Arg(3))
	}
	w.send(protocol.WorkComplete, string(p.Arg(0)), "")
	if err := chromedp.Do(ctx,
		poll(`document.getElementById("t-completed").textContent === "2" && `+
			`document.querySelector('#functions tr[data-function="gcjob"] td:nth-child(3)').textContent === "0"`),
	); err != nil {
		t.Fatalf("gclient's job not shown finished: %v", err)
	}
	// Another gclient job, found by its unique ID and cancelled from the page.
	doomed := gclientSubmit(t, e.gearman, "gcjob", "cancel me", "--unique", "cancel-me")
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#j-key"), "cancel-me"),
		chromedp.Click(chromedp.CSS(`#jobs-form button`)),
		poll(`document.querySelector('#jobs tr[data-handle="`+doomed+`"] button[data-cancel]') !== null`),
		chromedp.Click(chromedp.CSS(`#jobs tr[data-handle="`+doomed+`"] button[data-cancel]`)),
		poll(`document.getElementById("j-result").textContent.startsWith("cancelled `+doomed+`")`),
	); err != nil {
		t.Fatalf("cancel from the page: %v", err)
	}
	if ji, ok := e.srv.Job(doomed); ok {
		t.Fatalf("job cancelled from the page is still there: %+v", ji)
	}
	// A job whose worker dies holding it, with --job-retries 1: dropped,
	// and the page counts it.
	if err := chromedp.Do(ctx, poll(`document.getElementById("t-dropped").textContent === "0"`)); err != nil {
		t.Fatalf("dropped count not shown: %v", err)
	}
	dying := e.dial(t)
	dying.send(protocol.CanDo, "dropme")
	gclientSubmit(t, e.gearman, "dropme", "poison")
	dying.send(protocol.GrabJobUniq)
	dying.expect(protocol.JobAssignUniq)
	_ = dying.nc.Close()
	if err := chromedp.Do(ctx, poll(`document.getElementById("t-dropped").textContent === "1"`)); err != nil {
		t.Fatalf("dropped job not counted on the page: %v (server: %+v)", err, e.srv.Stats())
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	path := filepath.Join(t.TempDir(), "gserverd-dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	if dir := os.Getenv("GWORKERD_SCREENSHOT_DIR"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "gserverd-dashboard.png"), png, 0o644)
	}

	// More workers than the events carry, and a worker with more
	// functions than a row lists: the page says what it leaves out.
	for i := range 25 {
		w.send(protocol.CanDo, fmt.Sprintf("more-%02d", i))
	}
	w.sync()
	for range 200 {
		c := e.dial(t)
		c.send(protocol.CanDo, "crowd")
		c.sync()
	}
	if err := chromedp.Do(ctx,
		poll(`document.getElementById("w-total").textContent === "first 200 of 201"`),
		poll(`[...document.querySelectorAll('#workers tbody tr')].some(r => r.textContent.includes("more-17 … (27)"))`),
	); err != nil {
		t.Fatalf("cut workers list not shown: %v", err)
	}
}
