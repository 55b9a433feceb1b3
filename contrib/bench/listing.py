#!/usr/bin/python3
"""Listings at scale: `ls -l` of one directory of N entries and `find` over a tree of M keys in
many directories, through a tierfs mount on s3rver (or Ceph RGW with TIERFS_S3_SERVER=rgw):
time, cold (fresh mount and cache) and again (same mount), and the daemon's peak RSS above what
it takes mounted and idle, beside the limit: the same listing's LIST requests straight to the
server (boto3, 1,000 keys a page).  A benchmark, not a test: it prints figures and asserts
nothing but that every name is listed.  Run as root.

    contrib/bench/listing.py [--entries 100000] [--tree-keys 0] [--tree-dirs 1000]
                             [--server-dir DIR] [--bin LABEL=PATH ...]

Seeding goes through S3 PUTs (about a minute per 100,000 keys on this machine kind).  With
TIERFS_S3_SERVER=rgw, --server-dir keeps the RGW cluster in DIR after the run, and a later run
with the same DIR and counts starts it again and lists the keys already there, unseeded.  (The
first try at a million keys lost them: the stop killed the OSD while it was still writing its
memstore out.  The second, with the stop waiting for it, kept 548 MB on disk, but on restart
the OSD's placement group never came up and radosgw gave up initializing: at a million keys,
seed again.)
Each --bin measures one build on the same seeded server, one after the other, so that two
builds are compared without seeding twice."""

import argparse
import os
import shutil
import subprocess
import tempfile
import time

from benchlib import drop_caches, util


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def seed(s3, bucket, keys):
    from concurrent.futures import ThreadPoolExecutor
    t0 = time.monotonic()
    with ThreadPoolExecutor(32) as ex:
        list(ex.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=b"x"), keys))
    print(f"  seeded {len(keys)} keys in {time.monotonic() - t0:.0f} s", flush=True)


def list_limit(s3, bucket, prefix, delimiter):
    """Seconds to LIST every name under prefix straight from the server, and how many."""
    t0 = time.monotonic()
    n = 0
    kw = {"Delimiter": "/"} if delimiter else {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **kw):
        n += len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
    return time.monotonic() - t0, n


def timed(cmd):
    t0 = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return time.monotonic() - t0, r.stdout.count(b"\n")


def measure(a, s3, srv, work):
    """One build's figures: a fresh mount and cache in work, every listing cold and again."""
    cache, mnt = os.path.join(work, "cache"), os.path.join(work, "mnt")
    os.makedirs(mnt)
    drop_caches()
    with util.Mount("listing", mnt, srv.endpoint,
                    [f"cache_dir={cache}", "l2_min_free=0", "ttl=1h"]) as m:
        pid = m.proc.pid
        idle = vm_kib(pid, "VmRSS")
        runs = [("ls -l big/", ["ls", "-l", os.path.join(mnt, "big")], a.entries + 1,
                 "big/", True)]
        if a.tree_keys:
            runs.append(("find tree/", ["find", os.path.join(mnt, "tree")],
                         a.tree_keys + a.tree_dirs + 1, "tree/", False))
        for name, cmd, want, prefix, delim in runs:
            cold, n = timed(cmd)
            again, n2 = timed(cmd)
            assert n >= want - 1 and n2 == n, (name, n, n2, want)
            lim, ln = list_limit(s3, "listing", prefix, delim)
            print(f"  {name:12s} {want - 1:>9,} entries: cold {cold:6.2f} s, again "
                  f"{again:6.2f} s; daemon peak RSS {vm_kib(pid, 'VmHWM') / 1024:.0f} MiB "
                  f"({(vm_kib(pid, 'VmHWM') - idle) / 1024:.0f} MiB above idle); the "
                  f"server's LIST of them alone: {lim:.2f} s ({ln:,} names)", flush=True)


def label_path(v):
    """--bin's LABEL=PATH, as (label, path)."""
    label, sep, path = v.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"'{v}' is not LABEL=PATH")
    return label, path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100000)
    ap.add_argument("--tree-keys", type=int, default=0)
    ap.add_argument("--tree-dirs", type=int, default=1000)
    ap.add_argument("--dir", default="/var/tmp")
    ap.add_argument("--server-dir", help="RGW only: the cluster's directory, kept")
    ap.add_argument("--bin", action="append", type=label_path,
                    metavar="LABEL=PATH", help="measure this tierfs build (repeat to compare "
                    "builds on one seeded server); default $TIERFS_BIN")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="tierfs-list-", dir=a.dir)
    if a.server_dir and util.s3_server_kind() != "rgw":
        ap.error("--server-dir needs TIERFS_S3_SERVER=rgw")
    # TIERFS_S3_SERVER=rgw: Ceph RGW (contrib/rgw.sh)
    srv = util.RgwServer(datadir=a.server_dir) if a.server_dir else util.new_server()
    if a.server_dir:   # a restart loads every object kept, a stop writes them: minutes at a million
        os.environ.setdefault("RGW_WAIT", "900")
        os.environ.setdefault("RGW_STOP_WAIT", "900")
    try:
        srv.start()
        s3 = util.s3_client(srv.endpoint)
        keys = [f"big/f{i:07d}" for i in range(a.entries)]
        keys += [f"tree/d{i % a.tree_dirs:05d}/k{i:08d}" for i in range(a.tree_keys)]
        marker = f"seeded/{a.entries}-{a.tree_keys}-{a.tree_dirs}"
        try:
            s3.head_object(Bucket="listing", Key=marker)
            print(f"  {len(keys)} keys seeded by an earlier run", flush=True)
        except Exception:
            s3.create_bucket(Bucket="listing")
            seed(s3, "listing", keys)
            s3.put_object(Bucket="listing", Key=marker, Body=b"")
        for label, binary in a.bin or [("", None)]:
            if binary:
                os.environ["TIERFS_BIN"] = binary
                print(f"  {label}: {binary}", flush=True)
            measure(a, s3, srv, os.path.join(work, label or "run"))
    finally:
        srv.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
