#!/bin/sh
# make run: start gserverd (embedded store) and gworkerd with the sample jobs,
# then say what to try. Usage: deploy/run.sh [BIN_DIR]   (default ./bin)
# Ctrl-C stops both. State lives under ./tmp/run (git ignores it).
# GWORKERD_RUN_PORT (default 4730) moves the Gear port; the dashboards are on
# the next two ports. GWORKERD_RUN_DIR moves the state directory.
set -e
BIN=${1:-./bin}
PORT=${GWORKERD_RUN_PORT:-4730}
for p in gserverd gworkerd gclient; do
	if [ ! -x "$BIN/$p" ]; then
		echo "run.sh: $BIN/$p not found; run make build first" >&2
		exit 1
	fi
done
TOP=$(pwd)
RUN=${GWORKERD_RUN_DIR:-$TOP/tmp/run}
mkdir -p "$RUN/data" "$RUN/out"
SERVERS=127.0.0.1:$PORT
GCLIENT=$BIN/gclient
[ "$PORT" = 4730 ] || GCLIENT="$GCLIENT --servers $SERVERS"

# --job-retries 3: a job whose worker dies or times out is run at most 3
# times, then dropped (its client gets WORK_FAIL; the dashboard counts it).
"$BIN/gserverd" -L 127.0.0.1 -p "$PORT" --http-listen "127.0.0.1:$((PORT + 1))" \
	--data-dir "$RUN/data" --log-file "$RUN/gserverd.log" --verbose INFO --job-retries 3 &
SERVER=$!
stop_server() {
	if [ -n "$SERVER" ]; then
		kill "$SERVER" 2>/dev/null || true
		wait "$SERVER" 2>/dev/null || true
		SERVER=
	fi
}
# Ctrl-C (the whole foreground group gets SIGINT: gworkerd stops its
# children and returns first) is the way to end make run: exit 0, so
# that make does not report "*** Error 1".
trap 'stop_server' EXIT
trap 'stop_server; exit 0' INT TERM
i=0
until $GCLIENT ping >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 $SERVER 2>/dev/null; then
		echo "run.sh: gserverd did not start; see $RUN/gserverd.log" >&2
		exit 1
	fi
	sleep 0.1
done

cat >"$RUN/photo.json" <<JSON
{"source": "$TOP/jobs/testdata/sample.jpg", "output_dir": "$RUN/out", "sizes": [{"width": 320}, {"width": 100}]}
JSON

cat <<MSG
gserverd listens on $SERVERS (log: $RUN/gserverd.log, queue: $RUN/data);
gworkerd serves resize, reverse and the examples in jobs/examples (log below).
Dashboards: gserverd http://127.0.0.1:$((PORT + 1))/  gworkerd http://127.0.0.1:$((PORT + 2))/
Try, in another terminal:
  $GCLIENT submit resize $RUN/photo.json --prio high          # background: prints the job handle
  $GCLIENT submit resize $RUN/photo.json --wait               # foreground: prints the JSON result
  echo 'hello world' | $GCLIENT submit wordcount - --wait     # a shell job_<name> script
  printf 'Hello, PHP' | $GCLIENT submit strrev - --wait       # jobs/examples/job_strrev.php: GearmanDaemon's fnc_<name>($job), resident PHP
  $GCLIENT admin status                                       # queues and workers
  GWORKERD_CONTROL_SOCKET=$RUN/gworkerd.sock $BIN/gworkerd status -c deploy/gworkerd.yaml
Resized images appear in $RUN/out. Ctrl-C stops everything.
MSG

GWORKERD_SERVERS=$SERVERS \
GWORKERD_HTTP_LISTEN=127.0.0.1:$((PORT + 2)) \
GWORKERD_JOB_DIRS=$TOP/jobs/examples \
GWORKERD_RESIZE_ROOTS=$TOP/jobs/testdata,$RUN/out \
GWORKERD_PID_FILE=$RUN/gworkerd.pid \
GWORKERD_CONTROL_SOCKET=$RUN/gworkerd.sock \
GWORKERD_LOG_FILE= \
	"$BIN/gworkerd" start --foreground -c deploy/gworkerd.yaml
