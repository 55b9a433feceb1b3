#!/usr/bin/python3
"""4 KiB random reads with O_DIRECT (the page cache bypassed) served from L1 and from L2:
p50 and p99 latency, against the seed's targets (< 1 ms for L1, 5-15 ms for L2), with reading
4 KiB at random from a local file (O_DIRECT, the disk) beside them.  Run as root.

    contrib/bench/random_read.py [--size-mib 64] [--reads 2000] [--chunk-size 1M]"""

import argparse
import mmap
import os
import random
import shutil
import statistics
import tempfile
import time

from benchlib import drop_caches, util


def random_reads(path, size, n, seed, direct=True):
    buf = mmap.mmap(-1, 4096)     # page-aligned, as O_DIRECT wants
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    rnd = random.Random(seed)
    lat = []
    try:
        for _ in range(n):
            off = rnd.randrange(0, size // 4096) * 4096
            t0 = time.perf_counter()
            got = os.preadv(fd, [buf], off)
            lat.append((time.perf_counter() - t0) * 1000)
            assert got == 4096
    finally:
        os.close(fd)
    lat.sort()
    return lat


def served_by(log):
    """The tier counters of the mount's stats line, to show which tier did the work."""
    import re
    line = [l for l in log.splitlines() if " stats: " in l][-1]
    keep = ("s3 get", "l2 hits", "l2 misses", "memory hits", "memory misses", "l1 hits",
            "l1 promotions")
    out = []
    for sec in line.split(" stats: ", 1)[1].split("; "):
        name = sec.split(" ", 1)[0]
        for k, v in re.findall(r"(\w+)=(\d+)", sec):
            if f"{name} {k}" in keep:
                out.append(f"{name} {k}={v}")
    return ", ".join(out)


def summary(name, lat):
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]   # noqa: E731
    print(f"  {name:34s} p50 {p(0.50):7.3f} ms   p99 {p(0.99):7.3f} ms   "
          f"mean {statistics.mean(lat):7.3f} ms   ({len(lat)} reads)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--chunk-size", default="1M")
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tierfs-rand-", dir=a.dir)
    srv = util.S3Server().start()
    size = a.size_mib << 20
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="bench")
        body = os.urandom(size)
        s3.put_object(Bucket="bench", Key="data.bin", Body=body)
        cache, mnt = os.path.join(work, "cache"), os.path.join(work, "mnt")
        base = [f"cache_dir={cache}", "l2_min_free=0", "ttl=1h", f"chunk_size={a.chunk_size}"]
        print(f"4 KiB random reads, O_DIRECT, {a.size_mib} MiB file, chunk_size={a.chunk_size}")

        # L1: everything promoted (promote_after=1), then random reads hit RAM
        with util.Mount("bench", mnt, srv.endpoint, base + ["promote_after=1",
                                                            f"l1_size={2 * size}"]) as m:
            path = os.path.join(mnt, "data.bin")
            random_reads(path, size, 1, 0)                      # open, lookup
            with open(path, "rb") as f:                         # fill: every chunk read once
                while f.read(1 << 20):
                    pass
            summary("tierfs L1 (RAM)", random_reads(path, size, a.reads, 1))
        print("    served by:", served_by(m.log()))

        # L2: a new mount with no L1 and a small buffer, page cache dropped
        drop_caches()
        with util.Mount("bench", mnt, srv.endpoint, base + ["l1_size=0", "mem_cache=4M",
                                                            "readahead=0"]) as m:
            path = os.path.join(mnt, "data.bin")
            summary("tierfs L2 (SSD, cold page cache)", random_reads(path, size, a.reads, 2))
        print("    served by:", served_by(m.log()))

        raw = os.path.join(work, "raw.bin")
        with open(raw, "wb") as f:
            f.write(body)
        drop_caches()
        summary("local file, O_DIRECT (the disk)", random_reads(raw, size, a.reads, 3))
        summary("local file, page cache", random_reads(raw, size, a.reads, 4, direct=False))
        print("  seed targets: L1 < 1 ms, L2 5-15 ms")
    finally:
        srv.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
