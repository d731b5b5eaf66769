#!/bin/sh
# Test job: valid and malformed fd 3 lines; a result with a NUL.
echo "status 1 3" >&3
echo "data first chunk" >&3
echo "bogus line" >&3
echo "status x y" >&3
echo "warning low disk" >&3
echo "status 3 3" >&3
printf 'res\000ult'
