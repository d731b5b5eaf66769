#!/bin/sh
# make run: start gserverd (embedded store) and gworkerd with the sample jobs,
# then say what to try. Usage: deploy/run.sh [BIN_DIR]   (default ./bin)
# Ctrl-C stops both. State lives under ./tmp/run (git ignores it).
set -e
BIN=${1:-./bin}
for p in gserverd gworkerd gclient; do
	if [ ! -x "$BIN/$p" ]; then
		echo "run.sh: $BIN/$p not found; run make build first" >&2
		exit 1
	fi
done
TOP=$(pwd)
RUN=$TOP/tmp/run
mkdir -p "$RUN/data" "$RUN/out"

"$BIN/gserverd" -L 127.0.0.1 -p 4730 --data-dir "$RUN/data" --log-file "$RUN/gserverd.log" --verbose INFO &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT INT TERM
i=0
until "$BIN/gclient" ping >/dev/null 2>&1; do
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
gserverd listens on 127.0.0.1:4730 (log: tmp/run/gserverd.log, queue: tmp/run/data);
gworkerd serves resize, reverse and the examples in jobs/examples (log below).
Try, in another terminal:
  $BIN/gclient submit resize $RUN/photo.json --prio high          # background: prints the job handle
  $BIN/gclient submit resize $RUN/photo.json --wait               # foreground: prints the JSON result
  echo 'hello world' | $BIN/gclient submit wordcount - --wait     # a shell job_<name> script
  $BIN/gclient admin status                                       # queues and workers
  GWORKERD_CONTROL_SOCKET=$RUN/gworkerd.sock $BIN/gworkerd status -c deploy/gworkerd.yaml
Resized images appear in tmp/run/out. Ctrl-C stops everything.
MSG

GWORKERD_JOB_DIRS=$TOP/jobs/examples \
GWORKERD_PID_FILE=$RUN/gworkerd.pid \
GWORKERD_CONTROL_SOCKET=$RUN/gworkerd.sock \
GWORKERD_LOG_FILE= \
	"$BIN/gworkerd" start --foreground -c deploy/gworkerd.yaml
