#!/bin/sh
# Test job: fails without a word on stderr.
exit 4
