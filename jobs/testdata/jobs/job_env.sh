#!/bin/sh
# Test job: prints the job's environment and its working directory.
printf '%s|%s|%s|%s|%s|%s' "$GEARMAN_HANDLE" "$GEARMAN_FUNCTION" "$GEARMAN_UNIQUE" "$GEARMAN_ATTEMPT" "$EXTRA_VAR" "$(basename "$(pwd)")"
