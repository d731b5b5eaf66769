#!/bin/sh
# Test job: leaves a background process holding stdout and exits; the job
# must still end at once, and the leftover must be killed.
pidfile=$(cat)
sleep 300 &
echo "$!" > "$pidfile"
echo "done"
