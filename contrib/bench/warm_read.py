#!/usr/bin/python3
"""Warm read after remount: a file read once through the mount (filling the on-disk cache),
then unmounted, the page cache dropped (echo 3 > /proc/sys/vm/drop_caches), remounted and read
again, timed.  Compared with reading the same bytes straight from a file on the cache
directory's file system (the limit), with the FUSE ceiling (the same read through a FUSE file
system that holds the bytes in memory: contrib/bench/fuse_ceiling.c), and with s3fs
(-o use_cache) doing the same.  Run as root.

    contrib/bench/warm_read.py [--size-mib 256] [--runs 3] [--dir /var/tmp]"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile

from benchlib import drop_caches, fuse_ceiling, fuse_ceiling_prog, timed_read, util


def check(path, want):
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == want, f"wrong bytes from {path}"


def tierfs_warm(srv, work, want):
    cache, mnt = os.path.join(work, "tierfs-cache"), os.path.join(work, "tierfs-mnt")
    opts = [f"cache_dir={cache}", "l2_min_free=0", "ttl=1h"]
    shutil.rmtree(cache, ignore_errors=True)
    with util.Mount("bench", mnt, srv.endpoint, opts):
        check(os.path.join(mnt, "big.bin"), want)          # cold: fills L2
    drop_caches()
    with util.Mount("bench", mnt, srv.endpoint, opts):
        os.stat(os.path.join(mnt, "big.bin"))
        n, t = timed_read(os.path.join(mnt, "big.bin"))
        check(os.path.join(mnt, "big.bin"), want)
    return n / t / 1e6


def s3fs_mount(srv, mnt, cache, passwd):
    os.makedirs(mnt, exist_ok=True)
    subprocess.run(["s3fs", "bench", mnt, "-o", f"url={srv.endpoint}", "-o", "use_path_request_style",
                    "-o", f"passwd_file={passwd}", "-o", f"use_cache={cache}", "-o", "stat_cache_expire=3600"],
                   check=True)
    util.wait_for(lambda: os.path.ismount(mnt), 30, "s3fs to mount")


def s3fs_umount(mnt):
    subprocess.run(["fusermount3", "-u", mnt], check=False)
    subprocess.run(["fusermount", "-u", mnt], check=False, stderr=subprocess.DEVNULL)
    util.wait_for(lambda: not os.path.ismount(mnt), 30, "s3fs to unmount")


def s3fs_warm(srv, work, want):
    cache, mnt = os.path.join(work, "s3fs-cache"), os.path.join(work, "s3fs-mnt")
    passwd = os.path.join(work, "passwd-s3fs")
    with open(passwd, "w") as f:
        f.write(f"{util.ACCESS_KEY}:{util.SECRET_KEY}\n")
    os.chmod(passwd, 0o600)
    shutil.rmtree(cache, ignore_errors=True)
    s3fs_mount(srv, mnt, cache, passwd)
    try:
        check(os.path.join(mnt, "big.bin"), want)
    finally:
        s3fs_umount(mnt)
    drop_caches()
    s3fs_mount(srv, mnt, cache, passwd)
    try:
        os.stat(os.path.join(mnt, "big.bin"))
        n, t = timed_read(os.path.join(mnt, "big.bin"))
    finally:
        s3fs_umount(mnt)
    return n / t / 1e6


def raw_read(work, body):
    path = os.path.join(work, "raw.bin")
    with open(path, "wb") as f:
        f.write(body)
    drop_caches()
    n, t = timed_read(path)
    os.unlink(path)
    return n / t / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--no-s3fs", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tierfs-warm-", dir=a.dir)
    srv = util.S3Server().start()
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="bench")
        body = os.urandom(a.size_mib << 20)
        s3.put_object(Bucket="bench", Key="big.bin", Body=body)
        want = hashlib.sha256(body).hexdigest()
        res = {"raw file": [], "tierfs": []}
        ceiling = fuse_ceiling_prog() is not None
        if ceiling:
            res["FUSE ceiling"] = []
        if not a.no_s3fs and shutil.which("s3fs"):
            res["s3fs"] = []
        for _ in range(a.runs):
            res["raw file"].append(raw_read(work, body))
            res["tierfs"].append(tierfs_warm(srv, work, want))
            if ceiling:
                res["FUSE ceiling"].append(fuse_ceiling(a.size_mib, work))
            if "s3fs" in res:
                res["s3fs"].append(s3fs_warm(srv, work, want))
        print(f"warm read of {a.size_mib} MiB after remount, page cache dropped, {a.runs} runs, "
              f"on {a.dir}")
        raw = statistics.median(res["raw file"])
        for k, v in res.items():
            print(f"  {k:12s} median {statistics.median(v):7.1f} MB/s (min {min(v):.1f}, max {max(v):.1f})"
                  f"  ratio to raw {statistics.median(v) / raw:.2f}")
    finally:
        srv.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
