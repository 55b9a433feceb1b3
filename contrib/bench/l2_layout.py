#!/usr/bin/python3
"""Measures candidate L2 data layouts on the cache directory's file system: one file per chunk
(write to a temp name, rename into place) against one slab file of fixed slots (pwrite at
slot offsets, hole-punch to free).  Writes N chunks, drops the page cache, reads them back in a
random order, then frees half.  Run as root (for drop_caches).

    contrib/bench/l2_layout.py [DIR] [--chunks 512] [--chunk-size 1M]"""
import argparse
import ctypes
import os
import random
import shutil
import tempfile
import time

from benchlib import drop_caches

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def per_chunk(d, n, cs, data, order):
    os.makedirs(f"{d}/data", exist_ok=True)
    for i in range(256):
        os.makedirs(f"{d}/data/{i:02x}", exist_ok=True)
    t0 = time.monotonic()
    for i in range(n):
        tmp = f"{d}/tmp-{i}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
        os.rename(tmp, f"{d}/data/{i % 256:02x}/{i}")
    w = time.monotonic() - t0
    drop_caches()
    t0 = time.monotonic()
    for i in order:
        fd = os.open(f"{d}/data/{i % 256:02x}/{i}", os.O_RDONLY)
        assert len(os.pread(fd, cs, 0)) == cs
        os.close(fd)
    r = time.monotonic() - t0
    t0 = time.monotonic()
    for i in range(0, n, 2):
        os.unlink(f"{d}/data/{i % 256:02x}/{i}")
    e = time.monotonic() - t0
    return w, r, e


def slab(d, n, cs, data, order):
    fd = os.open(f"{d}/slab", os.O_RDWR | os.O_CREAT, 0o600)
    t0 = time.monotonic()
    for i in range(n):
        os.pwrite(fd, data, i * cs)
    w = time.monotonic() - t0
    drop_caches()
    t0 = time.monotonic()
    for i in order:
        assert len(os.pread(fd, cs, i * cs)) == cs
    r = time.monotonic() - t0
    t0 = time.monotonic()
    for i in range(0, n, 2):
        libc.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, ctypes.c_long(i * cs),
                       ctypes.c_long(cs))
    e = time.monotonic() - t0
    os.close(fd)
    return w, r, e


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default=None)
    ap.add_argument("--chunks", type=int, default=512)
    ap.add_argument("--chunk-size", type=int, default=1 << 20)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    data = os.urandom(a.chunk_size)
    order = list(range(a.chunks))
    random.Random(1).shuffle(order)
    mb = a.chunks * a.chunk_size / 1e6
    for name, fn in (("per-chunk files", per_chunk), ("slab file", slab)):
        ws, rs, es = [], [], []
        for _ in range(a.runs):
            d = tempfile.mkdtemp(prefix="l2layout-", dir=a.dir)
            w, r, e = fn(d, a.chunks, a.chunk_size, data, order)
            shutil.rmtree(d)
            ws.append(mb / w), rs.append(mb / r), es.append(a.chunks / 2 / e)
        med = lambda v: sorted(v)[len(v) // 2]   # noqa: E731
        print(f"{name:16s} write {med(ws):7.0f} MB/s   cold random read {med(rs):7.0f} MB/s   "
              f"free {med(es):9.0f} chunks/s")


if __name__ == "__main__":
    main()
