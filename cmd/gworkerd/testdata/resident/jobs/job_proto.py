#!/usr/bin/env python3
# An executable that speaks the resident protocol itself (jobs/README.md,
# "The resident protocol, version 1"), served with resident: true. It
# counts the jobs it served, so that a test sees one process serve many.

import os
import struct
import sys

inp = os.fdopen(3, "rb", buffering=0)
out = os.fdopen(4, "wb", buffering=0)


def read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = inp.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def frame(ftype, body=b""):
    out.write(ftype + struct.pack(">I", len(body)) + body)


frame(b"H", b"1 job_proto.py")
served = 0
while True:
    head = read_exact(5)
    if head is None:
        sys.exit(0)  # end of file between jobs: asked to exit
    ftype, size = head[:1], struct.unpack(">I", head[1:])[0]
    body = read_exact(size)
    if ftype != b"J" or body is None:
        sys.exit(1)
    fields = []
    for _ in range(5):
        (n,) = struct.unpack(">I", body[:4])
        fields.append(body[4:4 + n])
        body = body[4 + n:]
    handle, function, unique, attempt, workload = fields
    served += 1
    frame(b"S", struct.pack(">II", 1, 2))
    frame(b"D", b"proto data")
    if workload == b"fail":
        frame(b"E", b"proto exception")
        continue
    frame(b"C", b"proto:%s function %s pid %d served %d" % (workload, function, os.getpid(), served))
