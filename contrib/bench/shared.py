#!/usr/bin/python3
"""The shared cache for fleets, measured (issue 18): a source in the real-S3 model (the C delay
proxy: --rtt-ms, --conn-mbps per connection) and the shared bucket on a second s3rver on
loopback, several tierfs mounts with their own cache directories standing for machines.

    contrib/bench/shared.py [--size-mib 512] [--rtt-ms 20] [--conn-mbps 40] [--machines 4]

Figures (a benchmark: it prints, it asserts nothing):
  limit_shared   parallel curl of the chunk objects from the shared server (16 at once), MB/s
  first          the first machine's cold read (from the source, filling the shared cache)
  second         the second machine's cold read (from the shared cache), MB/s, its GETs at the
                 source, and its ratio to limit_shared
  fleet          --machines more machines reading the data set one after another, then all at
                 once: GETs at the source in all, against the data set's chunks
  down           a machine whose shared cache is down (its server stopped) against one without a
                 shared cache: cold read MB/s of each and their ratio
Run as root (drops the page cache); nothing stays mounted or running afterwards."""

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import EMPTY_SHA, drop_caches, timed_read, util  # noqa: E402
from suite import start_proxy, big_bytes  # noqa: E402

MiB = 1 << 20


def parallel_curl(endpoint, bucket, keys, streams):
    """MB/s of GETting every key with curl: streams processes at once, each GETting its share
    of the keys one after another on one connection (a process per object would measure
    process creation)."""
    groups = [keys[i::streams] for i in range(streams)]
    t0 = time.monotonic()
    procs = []
    for g in groups:
        cmd = ["curl", "-sf", "--aws-sigv4", "aws:amz:us-east-1:s3",
               "--user", f"{util.ACCESS_KEY}:{util.SECRET_KEY}",
               "-H", "x-amz-content-sha256: " + EMPTY_SHA]
        for k in g:
            cmd += ["-o", "/dev/null", f"{endpoint}/{bucket}/{k}"]
        procs.append(subprocess.Popen(cmd))
    for p in procs:
        p.wait()
    return sum(len(g) for g in groups) * MiB / (time.monotonic() - t0) / 1e6


def stats(mnt):
    with open(os.path.join(mnt, ".tierfs", "stats.json")) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--rtt-ms", type=int, default=20)
    ap.add_argument("--conn-mbps", type=int, default=40)
    ap.add_argument("--machines", type=int, default=4)
    a = ap.parse_args()
    live, mounts = [], []
    work = util.scratch_dir("bench-shared-")
    try:
        src = util.S3Server().start()
        live.append(src)
        shared = util.S3Server().start()
        live.append(shared)
        proxy, src_ep = start_proxy(src.port, a.rtt_ms, a.conn_mbps)
        live.append(proxy)
        s3 = util.s3_client(src.endpoint)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="big.bin", Body=big_bytes(a.size_mib))
        ss3 = util.s3_client(shared.endpoint)
        ss3.create_bucket(Bucket="fleet")
        chunks = a.size_mib
        n = [0]

        def machine(shared_ep=shared.endpoint, with_shared=True):
            n[0] += 1
            mnt = os.path.join(work, f"m{n[0]}")
            opts = ["ro"] + ([f"shared_cache=fleet", f"shared_cache_endpoint={shared_ep}"]
                             if with_shared else [])
            m = util.Mount("data", mnt, src_ep, opts).start()
            mounts.append(m)
            return m

        def cold(m):
            drop_caches()
            b, s = timed_read(os.path.join(m.mnt, "big.bin"))
            return b / s / 1e6

        def flushed(m):
            util.wait_for(lambda: stats(m.mnt)["tiers"]["shared"]["writes"] +
                          stats(m.mnt)["tiers"]["shared"]["writes_skipped"] >= chunks, 300,
                          "the shared cache's writes")

        first = machine()
        r_first = cold(first)
        flushed(first)
        skipped = stats(first.mnt)["tiers"]["shared"]["writes_skipped"]
        names = [o["Key"] for page in ss3.get_paginator("list_objects_v2").paginate(Bucket="fleet")
                 for o in page.get("Contents", [])]
        limit = parallel_curl(shared.endpoint, "fleet", names, 16)
        second = machine()
        r_second = cold(second)
        s2 = stats(second.mnt)["tiers"]
        print(f"data set {a.size_mib} MiB; source: {a.rtt_ms} ms RTT, {a.conn_mbps} MB/s per "
              "connection; shared cache: s3rver on loopback")
        print(f"first machine (source, fills the shared cache): {r_first:.0f} MB/s; "
              f"{len(names)} objects stored, {skipped} writes skipped")
        print(f"limit: parallel curl of the chunk objects from the shared server: {limit:.0f} MB/s")
        print(f"second machine: {r_second:.0f} MB/s = {r_second / limit:.2f} of the limit; "
              f"GETs at the source {s2['s3']['get']}, shared hits {s2['shared']['hits']}")

        gets = s2["s3"]["get"] + stats(first.mnt)["tiers"]["s3"]["get"]
        seq = [machine() for _ in range(a.machines - 2)]
        for m in seq:
            cold(m)
        gets_seq = gets + sum(stats(m.mnt)["tiers"]["s3"]["get"] for m in seq)
        print(f"{a.machines} machines one after another: {gets_seq} GETs at the source for "
              f"{chunks} chunks (one machine alone: {stats(first.mnt)['tiers']['s3']['get']})")
        ss3_keys = [{"Key": k} for k in names]
        for i in range(0, len(ss3_keys), 1000):
            ss3.delete_objects(Bucket="fleet", Delete={"Objects": ss3_keys[i:i + 1000]})
        together = [machine() for _ in range(a.machines)]
        drop_caches()
        with ThreadPoolExecutor(a.machines) as ex:
            rates = list(ex.map(lambda m: timed_read(os.path.join(m.mnt, "big.bin")), together))
        gets_tog = sum(stats(m.mnt)["tiers"]["s3"]["get"] for m in together)
        print(f"{a.machines} machines at once, empty shared cache: {gets_tog} GETs at the source "
              f"(one machine alone: {stats(first.mnt)['tiers']['s3']['get']}); "
              f"{sum(b for b, _ in rates) / max(s for _, s in rates) / 1e6:.0f} MB/s in all")
        for m in together + seq:
            m.kill()
            mounts.remove(m)

        without = machine(with_shared=False)
        r_without = cold(without)
        shared.stop()
        down = machine()
        r_down = cold(down)
        sd = stats(down.mnt)["tiers"]["shared"]
        print(f"shared cache down: {r_down:.0f} MB/s against {r_without:.0f} MB/s without a "
              f"shared cache: {r_without / r_down:.2f}x the time; breaker opened "
              f"{sd['breaker_opens']} time(s), {sd['errors']} errors")
    finally:
        for m in mounts:
            m.kill()
        for x in reversed(live):
            x.kill() if hasattr(x, "kill") else x.cleanup()


if __name__ == "__main__":
    main()
