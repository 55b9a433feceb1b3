"""Prefetch: readahead within a file, the interval predictor across time, the directory-order
predictor across files, one budget, and their accounting in the statistics."""

import mmap
import os
import random
import threading
import time

import util

CTLDIR = ".tierfs"
MiB = 1 << 20


stats = util.tierfs_stats
ctl = util.tierfs_ctl


def pf(mnt, name):
    return stats(mnt)["prefetch"]["predictors"][name]


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def test_readahead_sequential_then_random(s3, bucket, mount):
    body = os.urandom(48 * MiB)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    m = mount(bucket, ["direct_io", "l1_size=0"])
    path = os.path.join(m.mnt, "big.bin")
    assert read_file(path) == body
    ra = pf(m.mnt, "readahead")
    print("sequential 48 MiB, readahead:", ra)
    # a sequential reader runs on readahead: most chunks were fetched ahead and then read
    assert ra["issued"] >= 30, ra
    assert ra["used"] >= 0.9 * ra["issued"], ra
    assert stats(m.mnt)["prefetch"]["coverage"] > 0.5

    # random 4 KiB reads of the same (purged) file: little readahead, and what little there
    # is gets used (accuracy stays high)
    ctl(m.mnt, "purge")
    ctl(m.mnt, "reset-stats")
    rnd = random.Random(7)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        buf = mmap.mmap(-1, 4096)
        for _ in range(200):
            off = rnd.randrange(0, len(body) // 4096) * 4096
            assert os.preadv(fd, [buf], off) == 4096
            assert buf[:] == body[off:off + 4096]
    finally:
        os.close(fd)
    ra = pf(m.mnt, "readahead")
    print("200 random 4 KiB reads, readahead:", ra)
    assert ra["issued"] <= 10, ra            # 200 reads, hardly any readahead
    assert ra["wasted"] <= ra["issued"], ra
    s = stats(m.mnt)
    # the reads fetched their own chunks (48 chunks: nearly all of them touched)
    assert s["prefetch"]["demand_s3_chunks"] >= 40, (s["prefetch"], s["tiers"])


def test_prefetch_off(s3, bucket, mount):
    body = os.urandom(12 * MiB)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    for i in range(6):
        s3.put_object(Bucket=bucket, Key=f"d/f{i:02d}", Body=bytes([i]) * 100000)
    m = mount(bucket, ["prefetch=off", "direct_io"])
    assert read_file(os.path.join(m.mnt, "big.bin")) == body
    os.listdir(os.path.join(m.mnt, "d"))
    for i in range(6):
        assert read_file(os.path.join(m.mnt, "d", f"f{i:02d}")) == bytes([i]) * 100000
    s = stats(m.mnt)["prefetch"]
    assert s["enabled"] is False
    assert s["issued"] == 0, s
    assert s["demand_s3_chunks"] >= 12


def test_directory_order(s3, bucket, mount):
    files = {f"epoch/part-{i:03d}.dat": os.urandom(300_000 + i) for i in range(24)}
    util.put_many(s3, bucket, files)
    m = mount(bucket, ["direct_io"])
    d = os.path.join(m.mnt, "epoch")
    names = sorted(os.listdir(d))
    assert len(names) == 24
    for n in names:  # one epoch over the data set, in name order
        assert read_file(os.path.join(d, n)) == files["epoch/" + n]
    dirorder = pf(m.mnt, "dirorder")
    print("24 files in name order, dirorder:", dirorder)
    # after two files in order, the next ones were fetched ahead and then read
    assert dirorder["issued"] >= 15, dirorder
    assert dirorder["used"] >= 15, dirorder
    assert dirorder["accuracy"] >= 0.9, dirorder
    s = stats(m.mnt)
    assert s["prefetch"]["predictors"]["dirorder"]["coverage"] > 0.5
    # files out of order teach it nothing new
    ctl(m.mnt, "purge")
    ctl(m.mnt, "reset-stats")
    os.listdir(d)
    for n in random.Random(3).sample(names, 12):
        assert read_file(os.path.join(d, n)) == files["epoch/" + n]
    assert pf(m.mnt, "dirorder")["issued"] <= 6


def test_periodic_reader(s3, bucket, mount):
    """A reader that comes back every 3 s to a set of files that change between visits (a
    dashboard, a model reloading its inputs): after a few periods the interval predictor has
    revalidated and fetched the new versions before the reader asks."""
    keys = [f"feed/f{i}.bin" for i in range(4)]
    version = {k: os.urandom(2 * MiB) for k in keys}
    util.put_many(s3, bucket, version)
    m = mount(bucket, ["ttl=1", "prefetch_interval=1s", "direct_io"])
    period = 3.0
    start = time.monotonic()
    for n in range(7):
        # wait for this period's slot (a regular rhythm is what the predictor learns)
        delay = start + n * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for k in keys:
            assert read_file(os.path.join(m.mnt, k)) == version[k], (n, k)
        # the data changes right after each visit
        version = {k: os.urandom(2 * MiB) for k in keys}
        util.put_many(s3, bucket, version)
    s = stats(m.mnt)["prefetch"]
    iv = s["predictors"]["interval"]
    print("periodic reader, 7 visits:", s)
    assert s["revalidations"] >= 4, s
    assert iv["issued"] >= 8, iv      # two chunks of each new version, at least once
    assert iv["used"] >= 8, iv        # ... read by the reader when it came
    assert iv["coverage"] > 0.2, iv


def test_budget_caps_unread(s3, bucket, mount):
    body = os.urandom(40 * MiB)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=body)
    budget = 4 * MiB
    m = mount(bucket, ["direct_io", f"prefetch_budget={budget}", "readahead=32M"])
    seen = []
    done = threading.Event()

    def sample():
        while not done.is_set():
            p = stats(m.mnt)["prefetch"]
            seen.append(p["inflight_bytes"] + p["unread_bytes"])
            time.sleep(0.01)

    t = threading.Thread(target=sample)
    t.start()
    try:
        assert read_file(os.path.join(m.mnt, "big.bin")) == body
    finally:
        done.set()
        t.join()
    assert seen and max(seen) <= budget, max(seen)
    ra = pf(m.mnt, "readahead")
    assert ra["issued"] > 0 and ra["used"] > 0, ra
