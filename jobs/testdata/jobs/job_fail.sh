#!/bin/sh
# Test job: a long stderr, then exit 3; only the tail reaches the client.
cat >/dev/null
i=0
while [ $i -lt 300 ]; do echo "noise line $i" >&2; i=$((i+1)); done
echo "the real reason: input rejected" >&2
exit 3
