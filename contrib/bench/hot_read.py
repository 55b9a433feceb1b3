#!/usr/bin/python3
"""Hot re-read: a file already in the page cache, read again, through a tierfs mount and
through three references holding the same bytes in the page cache, with what the kernel built
each one's page cache of.  A benchmark, not a test: it prints figures.  Run as root.

    contrib/bench/hot_read.py [--size-mib 512] [--runs 5] [--dir /var/tmp]

A hot re-read through FUSE reaches no daemon: the kernel copies from the mount's page cache.
How fast it copies depends on two things tierfs does not choose, so this prints them beside
the speeds:
  - folio size: local file systems cache a file in large folios (2 MiB here); the FUSE of
    Linux 6.18 caches in 4 KiB pages (large folios for FUSE came later);
  - physical adjacency: the share of the file's 4 KiB pages that follow the one before them in
    physical memory, which depends on how fragmented free memory was when they were read in.
The references: a file on the cache directory's file system (large folios), a tmpfs file with
4 KiB pages written in order, and the same written in a shuffled order (4 KiB pages scattered
in memory).  The figures and what they mean are in docs/BENCHMARKS.md."""

import argparse
import mmap
import os
import random
import shutil
import statistics
import struct
import subprocess
import tempfile

from benchlib import timed_read, util

KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL = 1 << 15, 1 << 16


def page_layout(path):
    """(pages, pages in large folios, share of pages physically after the one before) of a
    file's page-cache pages, from /proc/self/pagemap and /proc/kpageflags (root only)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        n = size // 4096
        for i in range(n):
            m[i * 4096]   # maps each page (it is in the page cache already)
        start = None
        with open("/proc/self/maps") as f:
            for line in f:
                if line.rstrip().endswith(path):
                    start = int(line.split("-")[0], 16)
        large = adjacent = 0
        prev = None
        with open("/proc/self/pagemap", "rb") as pm, open("/proc/kpageflags", "rb") as kf:
            pm.seek(start // 4096 * 8)
            entries = struct.unpack(f"{n}Q", pm.read(8 * n))
            for e in entries:
                pfn = e & ((1 << 55) - 1) if e >> 63 else None
                if pfn is None:
                    prev = None
                    continue
                adjacent += prev is not None and pfn == prev + 1
                prev = pfn
                kf.seek(pfn * 8)
                flags = struct.unpack("Q", kf.read(8))[0]
                large += bool(flags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL))
        return n, large, adjacent / max(1, n - 1)
    finally:
        m.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tierfs-hot-", dir=a.dir)
    tmp = os.path.join(work, "tmpfs")
    os.makedirs(tmp)
    size = a.size_mib << 20
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size * 2 + (64 << 20)},huge=never",
                    "tierfs-hot", tmp], check=True)
    srv = util.new_server().start()
    try:
        body = os.urandom(size)
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="hot")
        s3.put_object(Bucket="hot", Key="big.bin", Body=body)
        files = {"local file": os.path.join(work, "local.bin"),
                 "tmpfs, 4 KiB pages in order": os.path.join(tmp, "inorder.bin"),
                 "tmpfs, 4 KiB pages scattered": os.path.join(tmp, "scattered.bin")}
        for name, p in files.items():
            with open(p, "wb") as f:
                if "scattered" not in name:
                    f.write(body)
                    continue
                f.truncate(size)
                pages = list(range(size // 4096))
                random.shuffle(pages)
                for i in pages:
                    os.pwrite(f.fileno(), body[i * 4096:(i + 1) * 4096], i * 4096)
        cache, mnt = os.path.join(work, "cache"), os.path.join(work, "mnt")
        os.makedirs(mnt)
        with util.Mount("hot", mnt, srv.endpoint, [f"cache_dir={cache}", "l2_min_free=0",
                                                   "ttl=1h"]):
            files = {"tierfs": os.path.join(mnt, "big.bin"), **files}
            for p in files.values():
                timed_read(p)     # into the page cache (tierfs: the cold read)
            speeds = {name: [] for name in files}
            for _ in range(a.runs):   # interleaved, so that each sees the same machine
                for name, p in files.items():
                    n, t = timed_read(p)
                    assert n == size, f"{name}: read {n} bytes of {size}"
                    speeds[name].append(n / t / 1e6)
            print(f"hot re-read of {a.size_mib} MiB, 1 MiB reads, median of {a.runs} "
                  f"(min..max), server {util.s3_server_kind()}")
            print(f"{'':30} {'MB/s':>22} {'of local':>9} {'large folios':>13} {'adjacent':>9}")
            local = statistics.median(speeds["local file"])
            for name, p in files.items():
                v = speeds[name]
                pages, large, adj = page_layout(p)
                print(f"{name:30} {statistics.median(v):8.0f} ({min(v):.0f}..{max(v):.0f})"
                      f" {statistics.median(v) / local:9.2f} {large / pages:13.2f} {adj:9.3f}")
    finally:
        srv.cleanup()
        subprocess.run(["umount", tmp], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
