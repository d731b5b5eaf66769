package monitor

import (
	"testing"
	"time"

	"github.com/gworkerd/gworkerd/worker/supervise"
)

func TestLogEvents(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	line := supervise.LogLine{Seq: 7, Time: at, Function: "f", Child: 1, Pid: 42, Stream: "stderr", Line: "a \"quoted\"\nline"}
	for _, tc := range []struct {
		name    string
		lines   []supervise.LogLine
		dropped int
		want    string
	}{
		{"nothing", nil, 0, ": no line yet\n\n"},
		{"line", []supervise.LogLine{line}, 0,
			"event: line\nid: 7\ndata: {\"seq\":7,\"time\":\"2026-01-02T03:04:05Z\",\"function\":\"f\",\"child\":1,\"pid\":42,\"stream\":\"stderr\",\"line\":\"a \\\"quoted\\\"\\nline\"}\n\n"},
		{"drop first", []supervise.LogLine{{Seq: 8, Time: at, Line: "x"}}, 3,
			"event: dropped\ndata: {\"dropped\":3,\"message\":\"dropped 3 lines: this reader is too slow\"}\n\n" +
				"event: line\nid: 8\ndata: {\"seq\":8,\"time\":\"2026-01-02T03:04:05Z\",\"function\":\"\",\"child\":0,\"pid\":0,\"stream\":\"\",\"line\":\"x\"}\n\n"},
	} {
		if got := string(logEvents(tc.lines, tc.dropped)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
