"""Faults between tierfs and S3 (a fault-injecting proxy): under HTTP 500, 503 SlowDown,
connection resets, stalls past the deadline, truncated bodies and wrong Content-Lengths, with
parallel readers, every read returns the correct bytes or EIO within a bounded time, the daemon
stays up, retries are counted, and nothing wrong lands in L2."""

import hashlib
import json
import os
import random
import threading
import time

import util
from fault_proxy import FaultProxy

TIMEOUT_MS = 4000
# One FUSE read waits for at most two S3 operations in sequence (its chunk, and a chunk it
# finds already being fetched), each bounded by the deadline.
READ_BOUND_S = 2 * TIMEOUT_MS / 1000 + 3


def test_reads_under_faults(tmpdir_short):
    srv = util.S3Server().start()
    proxy = None
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="faults")
        rnd = random.Random(5)
        files = {f"f{i}.bin": rnd.randbytes(rnd.randrange(50_000, 1_500_000)) for i in range(8)}
        util.put_many(s3, "faults", files)
        want = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
        rates = {"500": 0.08, "503": 0.08, "reset": 0.05, "truncate": 0.05, "badlen": 0.05,
                 "stall": 0.02}
        proxy = FaultProxy(srv.port, rates, seed=7, stall_s=3 * TIMEOUT_MS / 1000).start()
        cache = os.path.join(tmpdir_short, "cache")
        mnt = os.path.join(tmpdir_short, "m")
        opts = [f"cache_dir={cache}", "ttl=1h", "chunk_size=64K", f"timeout={TIMEOUT_MS}",
                "retries=8", "direct_io"]
        results = {"ok": 0, "eio": 0}
        problems = []
        lock = threading.Lock()
        with util.Mount("faults", mnt, proxy.endpoint, opts,
                        expect_log=[r"s3: .* failed", r"changed during the read",
                                    r"cannot list", r"cache: dropping"]) as m:
            def reader(seed):
                rr = random.Random(seed)
                for _ in range(6):
                    name = rr.choice(list(files))
                    path = os.path.join(mnt, name)
                    got, t_worst = [], 0.0
                    try:
                        fd = os.open(path, os.O_RDONLY)
                        try:
                            off = 0
                            while True:
                                t0 = time.monotonic()
                                b = os.pread(fd, 1 << 20, off)
                                t_worst = max(t_worst, time.monotonic() - t0)
                                if not b:
                                    break
                                got.append(b)
                                off += len(b)
                        finally:
                            os.close(fd)
                        ok = hashlib.sha256(b"".join(got)).hexdigest() == want[name]
                        with lock:
                            if ok:
                                results["ok"] += 1
                            else:
                                problems.append(f"WRONG BYTES from {name}")
                    except OSError as e:
                        with lock:
                            if e.errno == 5:
                                results["eio"] += 1
                            else:
                                problems.append(f"{name}: unexpected {e!r}")
                    if t_worst > READ_BOUND_S:
                        with lock:
                            problems.append(f"{name}: a read took {t_worst:.1f}s")

            threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            assert m.proc.poll() is None, "the daemon died"
            with open(os.path.join(mnt, ".tierfs", "stats.json")) as f:
                st = json.load(f)
        assert not problems, problems
        assert results["ok"] > 0, results
        assert st["tiers"]["s3"]["retries"] > 0
        print("reads:", results, "injected:", proxy.counts, "retries:", st["tiers"]["s3"]["retries"])
        proxy.stop()
        proxy = None

        # nothing wrong landed in L2: with S3 gone, every file is either right or EIO
        srv.stop()
        with util.Mount("faults", mnt, srv.endpoint, opts + ["timeout=1500"],
                        expect_log=[r"S3 is unreachable", r"s3: .* failed"]) as m:
            from_l2 = 0
            for name, body in files.items():
                try:
                    with open(os.path.join(mnt, name), "rb") as f:
                        assert f.read() == body, f"wrong bytes for {name} from L2"
                    from_l2 += 1
                except OSError as e:
                    assert e.errno == 5
            assert from_l2 > 0
    finally:
        if proxy:
            proxy.stop()
        srv.cleanup()


HOSTILE = {
    "malformed/": b"<?xml version='1.0'?><ListBucketResult><Contents><Key>a</Key><Si",
    "truncated/": (b"<ListBucketResult><IsTruncated>true</IsTruncated>"
                   b"<Contents><Key>truncated/a</Key><Size>1</Size></Contents></ListBucketResult>"),
    "enormous/": b"<ListBucketResult>" + b"<CommonPrefixes><Prefix>enormous/x/</Prefix>"
                 b"</CommonPrefixes>" * 700000 + b"</ListBucketResult>",
    "escape/": (b"<ListBucketResult><Contents><Key>escape/../../etc/passwd</Key><Size>5</Size>"
                b"</Contents><Contents><Key>/abs</Key><Size>1</Size></Contents>"
                b"<CommonPrefixes><Prefix>escape/..//</Prefix></CommonPrefixes>"
                b"<Contents><Key>escape/" + b"k" * 1017 + b"</Key><Size>1</Size></Contents>"
                b"<Contents><Key>escape/ok.txt</Key><Size>2</Size></Contents></ListBucketResult>"),
}


def test_hostile_listings(s3server, s3, bucket, mount):
    """Malformed, truncated-without-token and enormous (over 32 MiB) listings fail that
    directory with EIO; keys that would escape the mount, and a 1,024-byte key (the S3 limit,
    which s3rver cannot store), are skipped; nothing crashes."""
    util.put_many(s3, bucket, {f"{d}placeholder": b"p" for d in HOSTILE} | {"fine/ok": b"ok",
                                                                          "escape/ok.txt": b"ok"})

    def body(target):
        for d, b in HOSTILE.items():
            if f"prefix={d.rstrip('/')}%2F" in target and "max-keys=1&" not in target:
                return b
        return None

    proxy = FaultProxy(s3server.port, {}, list_body=body).start()
    try:
        m = mount(bucket, endpoint=proxy.endpoint,
                  expect_log=[r"malformed ListObjectsV2", r"response larger than",
                              r"s3: LIST .* failed", r"skipping key"])
        for d in ("malformed", "truncated", "enormous"):
            try:
                os.listdir(os.path.join(m.mnt, d))
                raise AssertionError(f"{d}: a hostile listing was accepted")
            except OSError as e:
                assert e.errno == 5, (d, e)
        assert sorted(os.listdir(os.path.join(m.mnt, "escape"))) == ["ok.txt"]
        assert os.listdir(os.path.join(m.mnt, "fine")) == ["ok"]
        assert m.proc.poll() is None
    finally:
        proxy.stop()


def test_slowdown_cuts_the_connections(tmpdir_short):
    """503 SlowDown answers: the GETs are retried (right bytes), the gate's limit is cut, and
    GETs in flight never exceed connections=."""
    srv = util.S3Server().start()
    proxy = None
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="slowdown")
        body = random.Random(9).randbytes(48 << 20)
        s3.put_object(Bucket="slowdown", Key="big.bin", Body=body)
        proxy = FaultProxy(srv.port, {"503": 0.3}, seed=3).start()
        mnt = os.path.join(tmpdir_short, "m")
        opts = ["l2_size=0", "connections=6", "retries=10", "timeout=30000"]
        with util.Mount("slowdown", mnt, proxy.endpoint, opts,
                        expect_log=[r"s3: .* failed"]) as m:
            with open(os.path.join(mnt, "big.bin"), "rb") as f:
                got = f.read()
            with open(os.path.join(mnt, ".tierfs", "stats.json")) as f:
                st = json.load(f)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
        c = st["connections"]
        assert proxy.counts["503"] > 0 and c["throttled"] > 0, (proxy.counts, c)
        assert c["cuts"] >= 1, c
        assert c["cap"] == 6 and c["peak"] <= 6, c
    finally:
        if proxy:
            proxy.stop()
        srv.cleanup()
