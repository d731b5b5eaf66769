#!/bin/sh
# Test job: starts a grandchild, records both pids in the file named by the
# workload, then waits forever; cancelling the job must kill both.
pidfile=$(cat)
sleep 300 &
echo "$! $$" > "$pidfile.tmp"
mv "$pidfile.tmp" "$pidfile"
echo "status 1 2" >&3
wait
