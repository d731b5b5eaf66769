#!/bin/sh
# job_wordcount.sh serves the Gearman function "wordcount" under gworkerd:
# the workload arrives on stdin, the result goes to stdout, progress lines
# go to file descriptor 3, and a non-zero exit fails the job with the tail
# of stderr as the exception message.
set -eu

input=$(cat)
echo "status 0 2" >&3

if [ -z "$input" ]; then
	echo "wordcount: the workload is empty" >&2
	exit 2
fi

lines=$(printf '%s\n' "$input" | wc -l | tr -d ' ')
echo "data lines=$lines" >&3
echo "status 1 2" >&3

words=$(printf '%s\n' "$input" | wc -w | tr -d ' ')
echo "status 2 2" >&3
printf ' words=%s\n' "$words"   # the result follows the data: "lines=2 words=5"
