"""The control directory MOUNT/.tierfs: statistics that add up, in three formats, and commands
that do exactly what they say (and nothing when refused)."""

import errno
import os
import re
import subprocess

import pytest

import util

CTLDIR = ".tierfs"


def read(path):
    with open(path, "rb") as f:
        return f.read()


stats = util.tierfs_stats
ctl = util.tierfs_ctl


def tier(path):
    return {k: int(v) for k, v in
            (kv.split("=") for kv in os.getxattr(path, "user.tierfs.tier").decode().split())}


def test_layout_and_reserved_name(s3, bucket, mount):
    util.put_many(s3, bucket, {".tierfs/hidden": b"x", "f": b"y"})
    m = mount(bucket, expect_log=[r"hiding the S3 prefix '.tierfs/'"])
    # reachable by name, not listed (cp -r, find, du of a mount see the bucket alone)
    assert sorted(os.listdir(m.mnt)) == ["f"]
    assert os.path.isdir(os.path.join(m.mnt, CTLDIR))
    assert sorted(os.listdir(os.path.join(m.mnt, CTLDIR))) == ["ctl", "metrics", "stats",
                                                                "stats.json"]
    st = os.stat(os.path.join(m.mnt, CTLDIR, "ctl"))
    assert st.st_mode & 0o777 == 0o200
    assert not os.path.exists(os.path.join(m.mnt, CTLDIR, "hidden"))
    with pytest.raises(OSError) as e:
        open(os.path.join(m.mnt, CTLDIR, "ctl"), "rb")       # write-only
    assert e.value.errno == errno.EACCES
    with pytest.raises(OSError) as e:
        open(os.path.join(m.mnt, CTLDIR, "stats"), "wb")
    assert e.value.errno == errno.EACCES


def test_counters_move(s3, bucket, mount):
    body = os.urandom(3 * 65536)
    s3.put_object(Bucket=bucket, Key="f.bin", Body=body)
    # direct_io: every read reaches tierfs, so the counters see them all
    m = mount(bucket, ["chunk_size=64K", "direct_io", "readahead=0", "l1_size=0"])
    path = os.path.join(m.mnt, "f.bin")
    s0 = stats(m.mnt)
    assert read(path) == body                                   # cold: from S3
    s1 = stats(m.mnt)
    # one to three GETs (adjacent chunks may share one), but every byte exactly once
    assert 1 <= s1["tiers"]["s3"]["get"] - s0["tiers"]["s3"]["get"] <= 3
    assert s1["tiers"]["s3"]["get_bytes"] - s0["tiers"]["s3"]["get_bytes"] == len(body)
    d = {k: s1["tiers"]["memory"][k] - s0["tiers"]["memory"][k] for k in ("hits", "misses")}
    # three chunk requests; the first misses, the others were fetched alongside it and may be
    # ready by the time the reader reaches them
    assert d["hits"] + d["misses"] == 3 and d["misses"] >= 1
    assert s1["tiers"]["l2"]["misses"] - s0["tiers"]["l2"]["misses"] == 3
    assert read(path) == body                                   # warm: from memory
    s2 = stats(m.mnt)
    assert s2["tiers"]["s3"]["get_bytes"] == s1["tiers"]["s3"]["get_bytes"]
    assert s2["tiers"]["memory"]["hits"] - s1["tiers"]["memory"]["hits"] >= 3
    ctl(m.mnt, "purge")                                         # now only L2 is empty too
    assert read(path) == body
    s3_ = stats(m.mnt)
    assert s3_["tiers"]["s3"]["get_bytes"] == s2["tiers"]["s3"]["get_bytes"] + len(body)
    for t in ("memory", "l2", "l1"):
        x = s3_["tiers"][t]
        total = x["hits"] + x["misses"]
        assert x["hit_rate"] == pytest.approx(x["hits"] / total if total else 0, abs=1e-4)
    assert s3_["tiers"]["s3"]["latency_ms"]["count"] >= 2


def parse_text(txt):
    out = {}
    for line in txt.splitlines():
        m = re.match(r"(L1 \(RAM\)|memory buffer|L2 \(disk\))\s+(\d+)\s+(\d+)", line)
        if m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        m = re.match(r"S3\s+GET (\d+)\s+HEAD (\d+)\s+LIST (\d+)", line)
        if m:
            out["s3"] = tuple(int(x) for x in m.groups())
    return out


def test_formats_agree_and_metrics_are_valid(s3, bucket, mount):
    util.put_many(s3, bucket, {f"d/f{i}": os.urandom(1000 * i) for i in range(1, 6)})
    m = mount(bucket)
    for i in range(1, 6):
        read(os.path.join(m.mnt, "d", f"f{i}"))
    j = stats(m.mnt)                                   # idle now: two snapshots agree
    t = parse_text(read(os.path.join(m.mnt, CTLDIR, "stats")).decode())
    assert t["L1 (RAM)"] == (j["tiers"]["l1"]["hits"], j["tiers"]["l1"]["misses"])
    assert t["memory buffer"] == (j["tiers"]["memory"]["hits"], j["tiers"]["memory"]["misses"])
    assert t["L2 (disk)"] == (j["tiers"]["l2"]["hits"], j["tiers"]["l2"]["misses"])
    assert t["s3"] == (j["tiers"]["s3"]["get"], j["tiers"]["s3"]["head"], j["tiers"]["s3"]["list"])

    def metrics():
        txt = read(os.path.join(m.mnt, CTLDIR, "metrics")).decode()
        helps, types, samples = set(), {}, {}
        for line in txt.splitlines():
            if line.startswith("# HELP "):
                helps.add(line.split()[2])
            elif line.startswith("# TYPE "):
                _, _, name, typ = line.split()
                types[name] = typ
            else:
                mm = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line)
                assert mm, f"not a sample line: {line!r}"
                samples[mm.group(1) + (mm.group(2) or "")] = float(mm.group(3))
        for key in samples:
            name = key.split("{")[0]
            family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
            assert family in helps and family in types, f"{name} lacks HELP/TYPE"
            assert family.startswith("tierfs_")
            if types[family] == "counter":
                assert family.endswith("_total"), family
        return types, samples

    types, first = metrics()
    assert types["tierfs_read_latency_seconds"] == "histogram"
    for tier_ in ("l1", "memory", "l2", "s3"):   # buckets are cumulative and end at +Inf
        buckets = [v for k, v in first.items()
                   if k.startswith(f'tierfs_read_latency_seconds_bucket{{tier="{tier_}"')]
        assert buckets == sorted(buckets)
        assert first[f'tierfs_read_latency_seconds_bucket{{tier="{tier_}",le="+Inf"}}'] == \
            first[f'tierfs_read_latency_seconds_count{{tier="{tier_}"}}']
    ctl(m.mnt, "purge")
    for i in range(1, 6):
        read(os.path.join(m.mnt, "d", f"f{i}"))
    _, second = metrics()
    for k, v in first.items():                      # counters only grow
        family = re.sub(r"_(bucket|sum|count)$", "", k.split("{")[0])
        if types.get(family) in ("counter", "histogram"):
            assert second[k] >= v, k


def test_invalidate_file_dir_and_glob(s3, bucket, mount):
    keys = ["logs/2026-01.log", "logs/2026-02.log", "logs/2025-12.log", "img/a.png",
            "img/sub/b.png", "top.txt"]
    util.put_many(s3, bucket, {k: os.urandom(70000) for k in keys})
    m = mount(bucket, ["chunk_size=64K"])
    p = {k: os.path.join(m.mnt, k) for k in keys}
    for k in keys:
        read(p[k])
    for k in keys:   # the L2 writer works off the reader's path: wait for it
        util.wait_for(lambda: tier(p[k])["l2"] == 70000, 10, f"{k} in L2")

    def cached():
        return {k for k in keys if tier(p[k])["l2"] > 0}

    ctl(m.mnt, "invalidate top.txt")                      # a file
    assert cached() == set(keys) - {"top.txt"}
    ctl(m.mnt, "invalidate /img")                         # a directory, recursively
    assert cached() == {"logs/2026-01.log", "logs/2026-02.log", "logs/2025-12.log"}
    ctl(m.mnt, "invalidate logs/2026-*")                  # a glob
    assert cached() == {"logs/2025-12.log"}
    # what was invalidated reads back correctly (from S3 again)
    assert read(p["img/sub/b.png"]) == s3.get_object(Bucket=bucket, Key="img/sub/b.png")["Body"].read()


def test_purge_empties_l1_and_l2(s3, bucket, mount):
    body = os.urandom(4 * 65536)
    s3.put_object(Bucket=bucket, Key="hot.bin", Body=body)
    m = mount(bucket, ["chunk_size=64K", "direct_io", "promote_after=2"])
    path = os.path.join(m.mnt, "hot.bin")
    read(path)
    read(path)
    util.wait_for(lambda: tier(path)["l2"] == len(body), 10, "the L2 writer")
    assert tier(path) == {"l1": len(body), "l2": len(body), "size": len(body)}
    ctl(m.mnt, "purge")
    assert tier(path) == {"l1": 0, "l2": 0, "size": len(body)}
    s = stats(m.mnt)
    assert s["tiers"]["l1"]["bytes"] == 0 and s["tiers"]["l2"]["entries"] == 0
    assert read(path) == body


def test_warm_then_read_with_s3_stopped(tmpdir_short):
    srv = util.S3Server().start()
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="warm")
        files = {f"tree/{d}/f{i}.bin": os.urandom(50000 + i) for d in ("a", "b/c") for i in range(5)}
        files["other/no.bin"] = b"not warmed"
        util.put_many(s3, "warm", files)
        cache = os.path.join(tmpdir_short, "cache")
        mnt = os.path.join(tmpdir_short, "m")
        opts = [f"cache_dir={cache}", "ttl=1h", "chunk_size=64K"]
        with util.Mount("warm", mnt, srv.endpoint, opts) as m:
            # the companion: warm waits until done and reports
            r = subprocess.run([os.path.join(util.ROOT, "contrib", "tierfsctl"), "warm",
                                os.path.join(mnt, "tree")], capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
            assert "warmed 10 files" in r.stdout
            s = stats(mnt)
            assert s["warm"]["files_done"] == 10 and not s["warm"]["running"]
            for k in files:
                if k.startswith("tree/"):
                    assert tier(os.path.join(mnt, k))["l2"] == len(files[k]), k
            r = subprocess.run([os.path.join(util.ROOT, "contrib", "tierfsctl"), "stat", mnt],
                               capture_output=True, text=True)
            assert r.returncode == 0 and "warm: idle, 10/10 files" in r.stdout
        srv.stop()
        with util.Mount("warm", mnt, srv.endpoint, opts + ["timeout=2000"],
                        expect_log=[r"S3 is unreachable", r"s3: .* failed"]) as m:
            for k, body in files.items():
                if k.startswith("tree/"):
                    assert read(os.path.join(mnt, k)) == body, k
    finally:
        srv.cleanup()


@pytest.mark.parametrize("line", ["bogus", "invalidate", "invalidate a b", "purge now",
                                  "demote 1", "warm", 'invalidate "unbalanced',
                                  "warm no/such/path", "reset-stats x"])
def test_bad_commands_refused_and_nothing_lost(s3, bucket, mount, line):
    body = os.urandom(70000)
    s3.put_object(Bucket=bucket, Key="keep.bin", Body=body)
    m = mount(bucket, expect_log=[r"ctl: refusing"])
    path = os.path.join(m.mnt, "keep.bin")
    read(path)
    util.wait_for(lambda: tier(path)["l2"] == len(body), 10, "the L2 writer")
    before = tier(path)
    with pytest.raises(OSError) as e:
        ctl(m.mnt, line)
    assert e.value.errno in (errno.EINVAL, errno.ENOENT)
    assert tier(path) == before
    assert "ctl: refusing" in m.log()


def test_binary_and_huge_lines_refused(s3, bucket, mount):
    m = mount(bucket, expect_log=[r"ctl: refusing"])
    with pytest.raises(OSError) as e:
        with open(os.path.join(m.mnt, CTLDIR, "ctl"), "wb") as f:
            f.write(b"purge\x00\xff\n")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        with open(os.path.join(m.mnt, CTLDIR, "ctl"), "wb") as f:
            f.write(b"x" * 100000)
    assert e.value.errno == errno.EINVAL


def test_only_the_owner_writes_ctl(s3, bucket, mount):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount(bucket, ["allow_other"])
    os.chmod(os.path.dirname(m.mnt), 0o755)
    r = subprocess.run(["sh", "-c", f"echo purge > {m.mnt}/{CTLDIR}/ctl"], capture_output=True,
                       text=True, user=65534, group=65534)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = subprocess.run(["cat", f"{m.mnt}/{CTLDIR}/stats"], capture_output=True, text=True,
                       user=65534, group=65534)
    assert r.returncode == 0 and "tierfs" in r.stdout          # reading is for everyone


def test_demote_and_reset_stats(s3, bucket, mount):
    body = os.urandom(2 * 65536)
    s3.put_object(Bucket=bucket, Key="f", Body=body)
    m = mount(bucket, ["chunk_size=64K", "direct_io", "promote_after=1", "demote_after=1s"])
    path = os.path.join(m.mnt, "f")
    read(path)
    assert tier(path)["l1"] == len(body)
    import time
    time.sleep(1.2)
    ctl(m.mnt, "demote")                 # now, not at the next demote_interval (60 s)
    assert tier(path)["l1"] == 0
    assert stats(m.mnt)["movement"]["demotions"] == 2
    util.wait_for(lambda: stats(m.mnt)["tiers"]["l2"]["entries"] == 2, 10, "the L2 writer")
    ctl(m.mnt, "reset-stats")
    s = stats(m.mnt)
    assert s["movement"]["demotions"] == 0 and s["tiers"]["s3"]["get"] == 0
    assert s["tiers"]["l2"]["entries"] == 2                    # gauges stay
