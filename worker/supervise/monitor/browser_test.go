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
)

// browser starts headless Chromium with a phone-sized window for the
// test; it is stopped when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		testpeer.Missing(t, "chromium", "chromium")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })
	return ctx
}

func poll(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingTimeout(20*time.Second))
}

// TestDashboardShowsGclientJob loads gworkerd's dashboard, submits a
// foreground job with the gclient command to the C gearmand that the
// supervised worker child serves, sees the job as the child's current job
// in the process table, lets it finish, and sees the child's job count
// go to 1 and the current job clear; gclient prints the result.
func TestDashboardShowsGclientJob(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	gclient := testpeer.Binary(t, "gclient")
	gd := testpeer.StartGearmand(t)
	e := startWorkers(t, gd.Addr, "hold")
	row := `#children tr[data-function="hold"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.base+"/#token=tok"),
		poll(`document.getElementById("status").textContent === "live" && document.querySelectorAll('`+row+` td.state-running').length === 1`),
	); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := chromedp.Do(ctx, poll(`document.querySelector('`+row+` td.jobs').textContent === "0"`)); err != nil {
		t.Fatalf("jobs before the submit: %v", err)
	}

	release := filepath.Join(t.TempDir(), "release")
	cmd := exec.Command(gclient, "--servers", gd.Addr, "submit", "hold", "-", "--wait", "--timeout", "30s")
	cmd.Stdin = strings.NewReader("hold:" + release)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if err := chromedp.Do(ctx, poll(`document.querySelector('`+row+` td.current').textContent.startsWith("H:")`)); err != nil {
		_ = os.WriteFile(release, nil, 0o644)
		<-waited
		t.Fatalf("the gclient job never showed as the current job: %v (gclient: %s %s)", err, out.String(), errOut.String())
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("gclient submit --wait: %v: %s", err, errOut.String())
	}
	if want := strings.ToUpper("hold:" + release); out.String() != want {
		t.Fatalf("gclient printed %q, want %q", out.String(), want)
	}
	if err := chromedp.Do(ctx, poll(`document.querySelector('`+row+` td.jobs').textContent === "1" && document.querySelector('`+row+` td.current').textContent === "–"`)); err != nil {
		t.Fatalf("the finished job in the process table: %v", err)
	}
}

// TestDashboardScaleInChromium loads gworkerd's dashboard in headless
// Chromium (token in the URL fragment), clicks the child's row and sees
// the line the child printed in the log pane (from the backlog), presses
// "scale" with 2, sees the new child running in the process table and
// its line arrive live in the log pane, and saves a phone-sized
// screenshot under the test's temp dir.
func TestDashboardScaleInChromium(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	e := start(t, "tok")
	runningRows := `document.querySelectorAll('#children tr[data-function="thumb"] td.state-running').length`
	// logLine is true when the pane shows the idle child's line from pid.
	logLine := func(pid int) string {
		return fmt.Sprintf(`Array.from(document.querySelectorAll('#log-lines div.stdout[data-pid="%d"] .text')).some((e) => e.textContent === "idle child ready")`, pid)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.base+"/#token=tok"),
		poll(`document.getElementById("status").textContent === "live" && `+runningRows+` === 1`),
	); err != nil {
		t.Fatalf("load: %v", err)
	}
	st, err := e.sup.Status(context.Background())
	if err != nil || len(st.Children) != 1 || st.Children[0].Pid == 0 {
		t.Fatalf("supervisor before the scale: %+v %v", st, err)
	}
	first := st.Children[0].Pid
	if err := chromedp.Do(ctx,
		// The page replaces its table rows on every update, so a node
		// chromedp found may be gone when it acts on it ("could not find
		// node with given id"): each action is one script, which no
		// update can interleave.
		poll(`(() => { const r = document.querySelector('#children tr[data-function="thumb"]'); if (!r) return false; r.click(); return true; })()`),
		poll(`document.getElementById("log-function").value === "thumb" && `+logLine(first)),
		poll(`(() => { const i = document.querySelector('input[data-scale="thumb"]');
			const b = document.querySelector('tr[data-function="thumb"] button[data-action="scale"]');
			if (!i || !b) return false; i.value = "2"; b.click(); return true; })()`),
		poll(runningRows+` === 2`),
	); err != nil {
		t.Fatalf("log pane and scale: %v", err)
	}
	st, err = e.sup.Status(context.Background())
	if err != nil || len(st.Functions) != 1 || st.Functions[0].Desired != 2 || len(st.Children) != 2 {
		t.Fatalf("supervisor after the page's scale: %+v %v", st, err)
	}
	second := st.Children[1].Pid
	if second == first {
		second = st.Children[0].Pid
	}
	if err := chromedp.Do(ctx, poll(logLine(second))); err != nil {
		t.Fatalf("the new child's line in the log pane: %v", err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	path := filepath.Join(t.TempDir(), "gworkerd-dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
	// GWORKERD_SCREENSHOT_DIR=docs (relative to the module root, as in
	// the README) also writes it there.
	if dir := os.Getenv("GWORKERD_SCREENSHOT_DIR"); dir != "" {
		if !filepath.IsAbs(dir) {
			root, err := testpeer.ModuleRoot()
			if err != nil {
				t.Fatal(err)
			}
			dir = filepath.Join(root, dir)
		}
		if err := os.WriteFile(filepath.Join(dir, "gworkerd-dashboard.png"), png, 0o644); err != nil {
			t.Fatalf("GWORKERD_SCREENSHOT_DIR: %v", err)
		}
	}
}
