#!/usr/bin/python3
"""The shared cache for fleets, measured (issue 18): a source in the real-S3 model (s3rver
behind the C delay proxy: --rtt-ms, --conn-mbps per connection) and the shared bucket on a
second server on loopback (--shared-server rgw, Ceph's RADOS Gateway, which honours
conditional writes and so fetch leases; or s3rver, which ignores them), several tierfs mounts
with their own cache directories standing for machines.  Run through the suite's command:

    contrib/bench/run --shared [--size-mib 1024] [--runs 3] [--rtt-ms 20] [--conn-mbps 40]
                               [--machines 4] [--shared-server rgw|s3rver]

Figures, each the median of --runs runs (with min and max); a benchmark: it prints, it
asserts nothing:
  limit_shared   parallel curl of the chunk objects from the shared server (16 at once), MB/s:
                 the mean of a measure before the second machine's read and one after
  first          the first machine's cold read (from the source, filling the shared cache)
  second         the second machine's cold read (from the shared cache), MB/s, and its ratio to
                 limit_shared; its GETs at the source
  fleet_seq      --machines machines reading the data set one after another: bytes fetched
                 from the source in all, against the data set's size
  fleet_once     --machines machines reading it at the same moment, empty shared cache: bytes
                 from the source in all, against the data set's size (fetch leases)
  down           a machine whose shared cache is down (nothing listens at its endpoint)
                 against one without a shared cache: the ratio of their cold read times
Output: a table on the terminal, bench-results/DATE-shared.json.  Run as root (drops the
page cache); nothing stays mounted or running afterwards."""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from benchlib import EMPTY_SHA, ROOT, drop_caches, timed_read, util  # noqa: E402
from suite import start_proxy, big_bytes, free_port  # noqa: E402

MiB = 1 << 20


def log(msg):
    print(msg, file=sys.stderr, flush=True)


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


def chunk_objects(ss3, bucket):
    return [o["Key"] for page in ss3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", []) if not o["Key"].endswith(".lease")]


def empty(ss3, bucket):
    keys = [{"Key": o["Key"]} for page in ss3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket) for o in page.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        ss3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000]})


def one_run(a, r, src_ep, shared, ss3, work, res):
    bucket = f"fleet{r}"
    ss3.create_bucket(Bucket=bucket)
    size = a.size_mib * MiB
    mounts = []
    n = [0]

    def machine(shared_ep=shared.endpoint, with_shared=True):
        n[0] += 1
        mnt = os.path.join(work, f"r{r}m{n[0]}")
        opts = ["ro"] + ([f"shared_cache={bucket}", f"shared_cache_endpoint={shared_ep}"]
                         if with_shared else [])
        m = util.Mount("data", mnt, src_ep, opts).start()
        mounts.append(m)
        return m

    def cold(m):
        drop_caches()
        b, s = timed_read(os.path.join(m.mnt, "big.bin"))
        return b / s / 1e6

    def settled(m):
        util.wait_for(lambda: stats(m.mnt)["tiers"]["shared"]["queued_bytes"] == 0, 600,
                      "the shared cache's writes")

    def done(ms):
        # a clean unmount: the daemon stores or gives back what it queued (a killed machine
        # would leave leases that cost the next one a wait)
        for m in ms:
            try:
                m.umount()
            except Exception:
                m.kill()
            mounts.remove(m)

    try:
        first = machine()
        res["first"].append(cold(first))
        settled(first)
        sf = stats(first.mnt)["tiers"]
        names = chunk_objects(ss3, bucket)
        res["stored_by_first"].append(len(names) / a.size_mib)
        # the limit measured before and after the second machine's read: the shared server
        # shares this machine's cores, and its speed drifts
        before = parallel_curl(shared.endpoint, bucket, names, 16)
        second = machine()
        res["second"].append(cold(second))
        res["limit_shared"].append((before + parallel_curl(shared.endpoint, bucket, names, 16)) / 2)
        s2 = stats(second.mnt)["tiers"]
        res["second_ratio"].append(res["second"][-1] / res["limit_shared"][-1])
        res["second_source_gets"].append(s2["s3"]["get"])
        log(f"run {r + 1}: first {res['first'][-1]:.0f} MB/s ({len(names)} of {a.size_mib} "
            f"chunks stored, {sf['shared']['writes_skipped']} skipped); limit "
            f"{res['limit_shared'][-1]:.0f} MB/s; second {res['second'][-1]:.0f} MB/s = "
            f"{res['second_ratio'][-1]:.2f}, {s2['s3']['get']} GETs at the source")
        settled(second)

        seq = [first, second] + [machine() for _ in range(a.machines - 2)]
        for m in seq[2:]:
            cold(m)
            settled(m)
        src = sum(stats(m.mnt)["tiers"]["s3"]["get_bytes"] for m in seq)
        res["fleet_seq"].append(src / size)
        done(seq)

        empty(ss3, bucket)
        together = [machine() for _ in range(a.machines)]
        drop_caches()
        t0 = time.monotonic()
        with ThreadPoolExecutor(a.machines) as ex:
            list(ex.map(lambda m: timed_read(os.path.join(m.mnt, "big.bin")), together))
        res["fleet_once_mbps"].append(a.machines * size / (time.monotonic() - t0) / 1e6)
        st = [stats(m.mnt)["tiers"] for m in together]
        res["fleet_once"].append(sum(s["s3"]["get_bytes"] for s in st) / size)
        res["fleet_once_waited"].append(sum(s["shared"]["lease_waited"] for s in st))
        res["fleet_once_timeouts"].append(sum(s["shared"]["lease_timeouts"] for s in st))
        log(f"run {r + 1}: {a.machines} one after another: {res['fleet_seq'][-1]:.3f}x the data "
            f"set from the source; at once: {res['fleet_once'][-1]:.3f}x (leases "
            f"{st[0]['shared']['leases']}, {res['fleet_once_waited'][-1]} chunks waited for, "
            f"{res['fleet_once_timeouts'][-1]} timed out)")
        for m in together:
            settled(m)
        done(together)

        # one after the other, in turns (the machine drifts between two reads)
        without = machine(with_shared=False)
        down = machine(shared_ep=f"http://127.0.0.1:{free_port()}")   # nothing listens there
        if r % 2:
            r_down, r_without = cold(down), cold(without)
        else:
            r_without, r_down = cold(without), cold(down)
        res["down"].append(r_without / r_down)
        log(f"run {r + 1}: shared cache down: {r_down:.0f} MB/s against {r_without:.0f} MB/s "
            f"without one: {res['down'][-1]:.2f}x the time; breaker opened "
            f"{stats(down.mnt)['tiers']['shared']['breaker_opens']} time(s)")
        done([without, down])
    finally:
        for m in mounts:
            m.kill()
        empty(ss3, bucket)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", action="store_true", help="(how contrib/bench/run calls it)")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rtt-ms", type=int, default=20)
    ap.add_argument("--conn-mbps", type=int, default=40)
    ap.add_argument("--machines", type=int, default=4)
    ap.add_argument("--shared-server", choices=("rgw", "s3rver"), default="rgw")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the page cache is dropped between reads")
    live = []
    work = util.scratch_dir("bench-shared-")
    keys = ("first", "stored_by_first", "limit_shared", "second", "second_ratio",
            "second_source_gets", "fleet_seq", "fleet_once", "fleet_once_mbps",
            "fleet_once_waited", "fleet_once_timeouts", "down")
    res = {k: [] for k in keys}
    try:
        src = util.S3Server().start()
        live.append(src)
        shared = (util.RgwServer() if a.shared_server == "rgw" else util.S3Server()).start()
        live.append(shared)
        proxy, src_ep = start_proxy(src.port, a.rtt_ms, a.conn_mbps)
        live.append(proxy)
        s3 = util.s3_client(src.endpoint)
        s3.create_bucket(Bucket="data")
        s3.put_object(Bucket="data", Key="big.bin", Body=big_bytes(a.size_mib))
        ss3 = util.s3_client(shared.endpoint)
        for r in range(a.runs):
            one_run(a, r, src_ep, shared, ss3, work, res)
    finally:
        for x in reversed(live):
            x.kill() if hasattr(x, "kill") else x.cleanup()
    if not res["down"]:
        sys.exit("no run finished")

    def fig(k, fmt="{:.2f}"):
        v = res[k]
        return (fmt.format(statistics.median(v)) +
                (f" ({fmt.format(min(v))}..{fmt.format(max(v))})" if len(v) > 1 else ""))
    lines = [
        f"shared cache: {a.size_mib} MiB data set, {len(res['down'])} run(s); source s3rver in "
        f"the real-S3 model ({a.rtt_ms} ms RTT, {a.conn_mbps} MB/s per connection); shared "
        f"bucket on {'Ceph RGW' if a.shared_server == 'rgw' else 's3rver'} on loopback",
        f"first machine, cold, from the source        {fig('first', '{:.0f}')} MB/s; "
        f"{fig('stored_by_first')} of its chunks stored",
        f"limit: parallel curl from the shared bucket  {fig('limit_shared', '{:.0f}')} MB/s",
        f"second machine, cold, from the shared cache {fig('second', '{:.0f}')} MB/s = "
        f"{fig('second_ratio')} of the limit; GETs at the source {fig('second_source_gets', '{:.0f}')}",
        f"{a.machines} machines one after another          {fig('fleet_seq', '{:.3f}')}x the data "
        "set fetched from the source",
        f"{a.machines} machines at the same moment         {fig('fleet_once', '{:.3f}')}x the data "
        f"set from the source ({fig('fleet_once_mbps', '{:.0f}')} MB/s in all; "
        f"{fig('fleet_once_waited', '{:.0f}')} chunks waited for, "
        f"{fig('fleet_once_timeouts', '{:.0f}')} waits timed out)",
        f"shared cache down, against none              {fig('down')}x the time",
    ]
    text = "\n".join(lines)
    print(text)
    os.makedirs(a.out, exist_ok=True)
    base = os.path.join(a.out, datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + "-shared")
    with open(base + ".json", "w") as f:
        json.dump({"args": vars(a), "results": res}, f, indent=1)
    with open(base + ".txt", "w") as f:
        f.write(text + "\n")
    log(f"written: {base}.json, {base}.txt")


if __name__ == "__main__":
    main()
