"""The shared tier (-o shared_cache=): two or three "machines" (mounts, each with its own cache
directory) over one source bucket.  In the s3rver run the shared bucket is on a second s3rver;
in the RGW run it is on RGW (a bucket of the session's server, whose SigV4 checks PUTs and
DELETEs strictly), and the test that stops the shared server uses an s3rver of its own.  The second machine's cold read of what the first read
sends no GET to the source; corrupt and truncated shared objects are caught, deleted and the
right bytes served; the shared server stopped in the middle of a read costs nothing but time;
a new version in the source is never mixed with the old; a wrong fleet key is refused."""

import json
import os
import subprocess

import pytest

import util

MiB = 1 << 20
WARN_VERIFY = r"shared cache: .* fails verification"
WARN_KEY = r"shared cache: .* was not written with the fleet's key"
WARN_DOWN = r"shared cache: \d+ failures in a row|s3: GET .*failed|s3: PUT .*failed"


@pytest.fixture
def own_shared_server():
    """An s3rver of the test's own, for the shared bucket."""
    srv = util.S3Server()
    try:
        yield srv.start()
    finally:
        srv.cleanup()


@pytest.fixture
def shared_server(request, s3server):
    """The shared bucket's server: RGW in the RGW run (the session's), else an s3rver of the
    test's own."""
    if util.s3_server_kind() == "rgw":
        yield s3server
    else:
        yield request.getfixturevalue("own_shared_server")


_fleets = iter(range(1 << 30))


@pytest.fixture
def fleet(s3, bucket, shared_server, mount, tmpdir_short):
    """machine(*extra_options, shared_endpoint=None, **mount_kw): a mount of the test's bucket
    with the shared cache in a bucket of its own (prefix c/) of the shared server (reached at
    shared_endpoint, when given)."""
    ss3 = util.s3_client(shared_server.endpoint)
    fb = f"fleet{os.getpid()}-{next(_fleets)}"
    ss3.create_bucket(Bucket=fb)

    def machine(*extra, shared_endpoint=None, **kw):
        # a deadline that sanitized builds on a loaded machine keep (half of it is "slow");
        # a test's own shared_cache_timeout comes later and wins
        opts = [f"shared_cache={fb}:c",
                f"shared_cache_endpoint={shared_endpoint or shared_server.endpoint}",
                "shared_cache_timeout=10000"]
        return mount(bucket, options=opts + list(extra), **kw)
    machine.s3 = ss3
    machine.bucket = fb
    machine.server = shared_server
    return machine


def stats(mnt):
    with open(os.path.join(mnt, ".tierfs", "stats.json")) as f:
        return json.load(f)


def read(mnt, name):
    with open(os.path.join(mnt, name), "rb") as f:
        return f.read()


def shared_objects(fleet, leases=False):
    """The chunk objects in the fleet's bucket (or their fetch leases)."""
    r = fleet.s3.list_objects_v2(Bucket=fleet.bucket, Prefix="c/tierfs-chunks/v1/")
    return sorted(o["Key"] for o in r.get("Contents", [])
                  if o["Key"].endswith(".lease") == leases)


def written(m, n):
    """Waits until machine m has stored n chunks in the shared cache."""
    util.wait_for(lambda: stats(m.mnt)["tiers"]["shared"]["writes"] >= n, 30,
                  f"{n} chunks written to the shared cache")


def first_machine(s3, bucket, fleet, key, body):
    """Stores body as key in the source; a first machine reads it and stores all of its chunks
    in the shared cache; returns that machine."""
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    a = fleet()
    assert read(a.mnt, key) == body
    written(a, (len(body) + MiB - 1) // MiB)
    return a


def test_second_machine_sends_no_get_to_the_source(s3, bucket, fleet):
    body = os.urandom(5 * MiB + 123)                 # 6 chunks
    s3.put_object(Bucket=bucket, Key="data.bin", Body=body)
    a = fleet()
    assert read(a.mnt, "data.bin") == body
    written(a, 6)
    assert len(shared_objects(fleet)) == 6
    sa = stats(a.mnt)
    assert sa["tiers"]["shared"]["enabled"] and sa["tiers"]["shared"]["misses"] >= 6

    b = fleet()
    assert read(b.mnt, "data.bin") == body
    sb = stats(b.mnt)
    assert sb["tiers"]["s3"]["get"] == 0, sb["tiers"]["s3"]
    assert sb["tiers"]["shared"]["hits"] == 6
    assert sb["tiers"]["shared"]["bytes_served"] == len(body)
    # a run's time (its chunks are asked at once) is recorded once its readers are woken: it
    # may come a moment after
    util.wait_for(lambda: stats(b.mnt)["tiers"]["shared"]["latency_ms"]["count"] >= 1, 10,
                  "the shared cache's latencies")
    runs = stats(b.mnt)["tiers"]["shared"]["latency_ms"]["count"]
    assert runs <= 6
    # what it read from the shared tier went to its own L2: a remount reads from disk
    util.wait_for(lambda: stats(b.mnt)["tiers"]["l2"]["entries"] == 6, 10, "L2 fills")
    metrics = open(os.path.join(b.mnt, ".tierfs", "metrics")).read()
    assert 'tierfs_shared_chunks_total{outcome="hit"} 6' in metrics
    assert f'tierfs_read_latency_seconds_count{{tier="shared"}} {runs}' in metrics
    text = open(os.path.join(b.mnt, ".tierfs", "stats")).read()
    assert "shared cache   hits 6 " in text and "breaker closed" in text
    ctl = subprocess.run([os.path.join(util.ROOT, "contrib", "tierfsctl"), "stat", b.mnt],
                         capture_output=True, text=True, check=True).stdout
    assert "shared cache: " in ctl and "breaker closed" in ctl


def test_machines_reading_at_once_fetch_each_chunk_once(s3, bucket, fleet):
    """Fetch leases: three machines that cold-read one file at the same moment fetch each chunk
    from the source once in all; the others wait for it in the shared cache.  It needs a bucket
    that honours conditional writes (If-None-Match: * on PUT): RGW does, and the RGW run checks
    the leases.  s3rver ignores the header: there the probe must find that out and turn leases
    off (else every machine would take every lease), and the machines each fetch from the
    source what they miss."""
    import threading
    body = os.urandom(24 * MiB)
    s3.put_object(Bucket=bucket, Key="job.bin", Body=body)
    # a wait no sanitized build on a loaded machine outlasts: every chunk is fetched once.
    # On s3rver, machines store the same chunk at once, and s3rver writes an object in place
    # (fs.createWriteStream, no rename): a GET meanwhile may read half of it.  Verification
    # catches that (a warning, the chunk from the source), so it may appear there.
    quirk = [WARN_VERIFY] if util.s3_server_kind() != "rgw" else []
    ms = [fleet("shared_cache_wait=60000", expect_log=quirk) for _ in range(3)]
    start = threading.Barrier(len(ms))
    got = [None] * len(ms)

    def reader(i):
        start.wait()
        got[i] = read(ms[i].mnt, "job.bin")
    threads = [threading.Thread(target=reader, args=(i,)) for i in range(len(ms))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert all(g == body for g in got)
    st = [stats(m.mnt)["tiers"] for m in ms]
    from_source = sum(s["s3"]["get_bytes"] for s in st)
    if util.s3_server_kind() == "rgw":
        assert all(s["shared"]["leases"] == "on" for s in st), [s["shared"] for s in st]
        assert from_source == len(body), [s["s3"] for s in st]
        assert sum(s["shared"]["leases_taken"] for s in st) == 24
        waited = sum(s["shared"]["lease_waited"] for s in st)
        assert waited >= 1 and sum(s["shared"]["lease_timeouts"] for s in st) == 0
        # every chunk was served to the two machines that did not fetch it
        assert sum(s["shared"]["hits"] for s in st) == 2 * 24
        for m in ms:
            util.wait_for(lambda: stats(m.mnt)["tiers"]["shared"]["queued_bytes"] == 0, 30,
                          "the shared writes")
        # a stored chunk keeps its lease (a late miss finds it taken and the chunk there)
        assert len(shared_objects(fleet)) == 24 and len(shared_objects(fleet, True)) == 24
        text = open(os.path.join(ms[0].mnt, ".tierfs", "stats")).read()
        assert "leases on" in text
        metrics = open(os.path.join(ms[0].mnt, ".tierfs", "metrics")).read()
        assert 'tierfs_shared_leases_total{outcome="taken"}' in metrics
    else:
        assert all(s["shared"]["leases"] == "unsupported" for s in st), [s["shared"] for s in st]
        assert from_source >= len(body)
        assert sum(s["shared"]["leases_taken"] + s["shared"]["lease_waits"] for s in st) == 0
        assert "ignores conditional writes" in ms[0].log()
    # the probe's object is gone
    r = fleet.s3.list_objects_v2(Bucket=fleet.bucket, Prefix="c/tierfs-chunks/v1/probe-")
    assert r.get("KeyCount", 0) == 0


def test_a_lease_held_by_a_dead_machine_costs_one_wait(s3, bucket, fleet):
    """A machine that dies holding a lease: the next one waits shared_cache_wait for the chunk,
    then fetches it from the source and stores it; the one after finds it.  (RGW run only:
    leases need a bucket that honours conditional writes.)"""
    if util.s3_server_kind() != "rgw":
        pytest.skip("leases need conditional writes, which s3rver ignores; the RGW run checks")
    import time
    body = os.urandom(2 * MiB)
    first_machine(s3, bucket, fleet, "d.bin", body)
    names = shared_objects(fleet)
    assert len(shared_objects(fleet, True)) == 2
    # as if a machine had taken chunk 1's lease and died before storing it
    fleet.s3.delete_object(Bucket=fleet.bucket, Key=names[1])
    b = fleet("shared_cache_wait=1500")
    t0 = time.monotonic()
    assert read(b.mnt, "d.bin") == body
    assert time.monotonic() - t0 >= 1.5
    sb = stats(b.mnt)["tiers"]
    assert sb["shared"]["lease_timeouts"] == 1 and sb["shared"]["hits"] == 1
    assert sb["s3"]["get_bytes"] == MiB
    written(b, 1)
    c = fleet()
    assert read(c.mnt, "d.bin") == body
    sc = stats(c.mnt)["tiers"]
    assert sc["s3"]["get"] == 0 and sc["shared"]["hits"] == 2


def test_writes_beyond_the_queue_are_read_back_from_l2(s3, bucket, fleet):
    """A shared cache that takes writes more slowly than the source serves: writes beyond the
    in-memory queue (here two chunks) wait without their bytes (up to 8 times the queue) and
    are read back from L2 when their turn comes, quietly (no L2 hit is counted); none is
    skipped, and the second machine needs no GET."""
    body = os.urandom(12 * MiB + 17)                 # 13 chunks
    s3.put_object(Bucket=bucket, Key="q.bin", Body=body)
    a = fleet(env={"TIERFS_TEST_SHARED_QUEUE_BYTES": str(2 * MiB)})
    assert read(a.mnt, "q.bin") == body
    written(a, 13)
    sa = stats(a.mnt)["tiers"]
    assert sa["shared"]["writes_skipped"] == 0 and sa["shared"]["queued_bytes"] == 0
    # a run's chunks arrive together, more than the queue holds
    assert sa["shared"]["writes_read_back"] >= 1, sa["shared"]
    assert sa["l2"]["hits"] == 0, sa["l2"]           # the read-backs are not the reader's
    b = fleet()
    assert read(b.mnt, "q.bin") == body
    sb = stats(b.mnt)["tiers"]
    assert sb["s3"]["get"] == 0 and sb["shared"]["hits"] == 13


def test_corrupt_and_truncated_objects_are_caught(s3, bucket, fleet):
    body = os.urandom(4 * MiB)
    first_machine(s3, bucket, fleet, "f", body)
    names = shared_objects(fleet)
    assert len(names) == 4
    flipped = bytearray(fleet.s3.get_object(Bucket=fleet.bucket, Key=names[1])["Body"].read())
    flipped[len(flipped) // 2] ^= 0x40
    fleet.s3.put_object(Bucket=fleet.bucket, Key=names[1], Body=bytes(flipped))
    whole = fleet.s3.get_object(Bucket=fleet.bucket, Key=names[2])["Body"].read()
    fleet.s3.put_object(Bucket=fleet.bucket, Key=names[2], Body=whole[: len(whole) // 3])

    b = fleet(expect_log=[WARN_VERIFY])
    assert read(b.mnt, "f") == body
    sb = stats(b.mnt)
    assert sb["tiers"]["shared"]["verify_failures"] == 2
    assert sb["tiers"]["shared"]["hits"] == 2
    assert sb["tiers"]["s3"]["get"] >= 1            # the two bad ones came from the source
    assert "fails verification" in b.log()
    # deleted, then written again from what the source served: a third machine needs no GET
    written(b, 2)
    c = fleet()
    assert read(c.mnt, "f") == body
    sc = stats(c.mnt)
    assert sc["tiers"]["s3"]["get"] == 0 and sc["tiers"]["shared"]["hits"] == 4


def test_shared_server_stopped_mid_read(s3, bucket, mount, own_shared_server):
    body = os.urandom(12 * MiB)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    util.s3_client(own_shared_server.endpoint).create_bucket(Bucket="fleet")

    def machine(*extra, **kw):
        opts = ["shared_cache=fleet:c", f"shared_cache_endpoint={own_shared_server.endpoint}",
                "shared_cache_timeout=10000"]
        return mount(bucket, options=opts + list(extra), **kw)
    a = machine()
    assert read(a.mnt, "big") == body
    written(a, 12)

    b = machine("readahead=0", expect_log=[WARN_DOWN])
    with open(os.path.join(b.mnt, "big"), "rb") as f:
        first = f.read(3 * MiB)
        own_shared_server.stop()                    # the shared cache goes away
        rest = f.read()
    assert first + rest == body
    sb = stats(b.mnt)
    sh = sb["tiers"]["shared"]
    assert sh["hits"] >= 3 and sh["errors"] >= 1
    assert sh["breaker_open"] and sh["breaker_opens"] >= 1
    assert sb["tiers"]["s3"]["get"] >= 1


def test_a_slow_shared_cache_is_not_asked(s3, bucket, fleet):
    """Alive but slow is as bad as down: answers slower than half the deadline open the
    breaker, and the read goes on from the source."""
    from fault_proxy import FaultProxy
    body = os.urandom(10 * MiB)
    s3.put_object(Bucket=bucket, Key="s", Body=body)
    a = fleet()
    assert read(a.mnt, "s") == body
    written(a, 10)
    # answers in 1.3 s: within the 2 s deadline, slower than half of it
    proxy = FaultProxy(fleet.server.port, {}, delay_s=1.3).start()
    try:
        b = fleet("shared_cache_timeout=2000", "readahead=0", expect_log=[WARN_DOWN],
                  shared_endpoint=proxy.endpoint)
        assert read(b.mnt, "s") == body
        sh = stats(b.mnt)["tiers"]["shared"]
        assert sh["breaker_opens"] >= 1 and sh["hits"] < 10, sh
        assert stats(b.mnt)["tiers"]["s3"]["get"] >= 1
    finally:
        proxy.stop()


def test_a_new_version_is_never_mixed_with_the_old(s3, bucket, fleet):
    v1, v2 = os.urandom(3 * MiB), os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="v", Body=v1)
    a = fleet("ttl=1")
    assert read(a.mnt, "v") == v1
    written(a, 3)
    s3.put_object(Bucket=bucket, Key="v", Body=v2)  # same size, new ETag
    b = fleet()
    assert read(b.mnt, "v") == v2
    sb = stats(b.mnt)
    assert sb["tiers"]["shared"]["hits"] == 0 and sb["tiers"]["shared"]["verify_failures"] == 0
    written(b, 3)
    assert len(shared_objects(fleet)) == 6       # each version under its own names
    util.wait_for(lambda: read(a.mnt, "v") == v2, 10, "the first machine to see v2")


def test_a_wrong_fleet_key_is_refused(s3, bucket, fleet, tmpdir_short):
    k1, k2 = os.path.join(tmpdir_short, "k1"), os.path.join(tmpdir_short, "k2")
    with open(k1, "w") as f:
        f.write("the fleet's own key, 32 bytes..\n")
    with open(k2, "w") as f:
        f.write("somebody else's key, also long\n")
    body = os.urandom(2 * MiB + 5)
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    a = fleet(f"shared_cache_key={k1}")
    assert read(a.mnt, "k") == body
    written(a, 3)
    c = fleet(f"shared_cache_key={k1}")             # the same fleet: served
    assert read(c.mnt, "k") == body
    assert stats(c.mnt)["tiers"]["s3"]["get"] == 0
    b = fleet(f"shared_cache_key={k2}", expect_log=[WARN_KEY])
    assert read(b.mnt, "k") == body
    sb = stats(b.mnt)["tiers"]
    assert sb["shared"]["verify_failures"] == 3 and sb["shared"]["hits"] == 0
    assert sb["s3"]["get"] >= 1
    assert "was not written with the fleet's key" in b.log()


def test_bad_shared_cache_options(bucket, s3server, tmpdir_short):
    mnt = os.path.join(tmpdir_short, "m")
    os.makedirs(mnt)
    env = util.daemon_env(util.scratch_dir("home-"))
    short = os.path.join(tmpdir_short, "short")
    with open(short, "w") as f:
        f.write("tiny\n")
    base = [f"endpoint={s3server.endpoint}", "shared_cache=fleet"]
    r = util.run_tierfs(["-f", "-o", ",".join(base + [f"shared_cache_key={short}"]), bucket, mnt],
                        env, mnt)
    assert r.returncode == 1 and "fewer than 16 bytes" in r.stderr, r.stderr
    r = util.run_tierfs(["-f", "-o", ",".join(base + ["shared_cache_key=/nonexistent"]), bucket,
                         mnt], env, mnt)
    assert r.returncode == 1 and "cannot be read" in r.stderr, r.stderr
    r = util.run_tierfs(["-f", "-o", f"endpoint={s3server.endpoint},shared_cache_region=x",
                         bucket, mnt], env, mnt)
    assert r.returncode == 2 and "need shared_cache=" in r.stderr, r.stderr
    r = util.run_tierfs(["-f", "-o", ",".join(base[:1] + ["shared_cache=bad/name"]), bucket, mnt],
                        env, mnt)
    assert r.returncode == 2 and "bad bucket name" in r.stderr, r.stderr
