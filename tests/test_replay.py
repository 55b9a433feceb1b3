"""tierfs-replay (contrib/replay): its LRU against an independent one (Python's OrderedDict)
on seeded random traces, count for count; Belady's optimum never beaten; .zst input; bad
input refused with a clear message; L2's order (policy/evict.c) with its invariants checked
after every access, and issue 16's targets for it on the real CloudPhysics trace and a loop
over a data set twice the cache."""

import collections
import os
import random
import subprocess

import pytest

import util

CHUNK = 65536


def replay_bin():
    path = os.path.join(os.path.dirname(os.path.dirname(util.tierfs_bin())), "contrib",
                        "replay", "tierfs-replay")
    assert os.access(path, os.X_OK), f"{path} missing: build first"
    return path


def make_trace(path, seed, n=20000):
    """Requests of 1..200 KiB at random offsets of three keys, some spanning chunks."""
    rnd = random.Random(seed)
    reqs = []
    with open(path, "w") as f:
        f.write("time_us,key,offset,size\n")
        for i in range(n):
            key = f"k{rnd.choice((0, 0, 0, 1, 2))}"
            off = int(rnd.paretovariate(1.2) * 300000) % (400 * CHUNK)
            size = rnd.randrange(1, 200 * 1024)
            f.write(f"{i * 37},{key},{off},{size}\n")
            reqs.append((key, off, size))
    return reqs


def chunk_accesses(reqs):
    for key, off, size in reqs:
        for c in range(off // CHUNK, (off + size - 1) // CHUNK + 1):
            yield (key, c)


def lru_misses(accesses, cap):
    cache, miss = collections.OrderedDict(), 0
    for a in accesses:
        if a in cache:
            cache.move_to_end(a)
        else:
            miss += 1
            cache[a] = True
            if len(cache) > cap:
                cache.popitem(last=False)
    return miss


def run(args):
    return subprocess.run([replay_bin()] + args, capture_output=True, text=True, timeout=300)


def parse(out):
    rows = {}
    for line in out.splitlines():
        pol, frac, cap, ratio = line.split("\t")
        rows[(pol, float(frac))] = (int(cap), ratio)
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_lru_matches_an_independent_lru(tmpdir_short, seed):
    path = os.path.join(tmpdir_short, "t.csv")
    reqs = make_trace(path, seed)
    acc = list(chunk_accesses(reqs))
    ws = len(set(acc))
    sizes = [0.013, 0.05, 0.1, 0.25, 0.6]
    r = run(["--chunk-size", "64K", "--sizes", ",".join(map(str, sizes)), "--policy", "lru",
             path])
    assert r.returncode == 0, r.stderr
    rows = parse(r.stdout)
    assert f"{len(acc)} accesses, working set {ws} chunks" in r.stderr
    for f in sizes:
        cap = max(1, int(f * ws + 0.5))
        assert rows[("lru", f)] == (cap, f"{lru_misses(acc, cap) / len(acc):.6f}"), f


def test_belady_is_never_beaten_and_zst_reads_the_same(tmpdir_short):
    path = os.path.join(tmpdir_short, "t.csv")
    make_trace(path, 9)
    r = run(["--chunk-size", "64K", "--policy", "all", path])
    assert r.returncode == 0, r.stderr
    rows = parse(r.stdout)
    pols = {p for p, _ in rows}
    assert pols == {"tierfs", "lru", "arc", "s3fifo", "sieve", "2q", "lirs", "belady"}
    for (p, f), (cap, ratio) in rows.items():
        assert float(rows[("belady", f)][1]) <= float(ratio), (p, f)
        assert 0 < float(ratio) <= 1
    subprocess.run(["zstd", "-q", path], check=True)
    z = run(["--chunk-size", "64K", "--policy", "all", path + ".zst"])
    assert z.returncode == 0 and z.stdout == r.stdout, z.stderr


def test_bad_input(tmpdir_short):
    path = os.path.join(tmpdir_short, "t.csv")
    with open(path, "w") as f:
        f.write("time_us,key,offset,size\n0,a,0,10\nnot,a,line\n5,a,x,3\n7,a,1048576,1\n")
    r = run(["--policy", "lru", "--sizes", "1", path])
    assert r.returncode == 0 and "2 malformed lines skipped" in r.stderr, r.stderr
    assert r.stdout == "lru\t1\t2\t1.000000\n"
    r = run(["--policy", "fifo", path])
    assert r.returncode == 2 and "unknown policy 'fifo'" in r.stderr
    r = run(["--sizes", "0,2", path])
    assert r.returncode == 2 and "bad size" in r.stderr
    r = run([os.path.join(tmpdir_short, "missing.csv")])
    assert r.returncode == 1 and "missing.csv" in r.stderr
    r = run([])
    assert r.returncode == 2 and "usage" in r.stderr


def test_order_invariants_hold_on_every_access(tmpdir_short):
    path = os.path.join(tmpdir_short, "t.csv")
    make_trace(path, 4, n=4000)
    r = run(["--chunk-size", "64K", "--sizes", "0.01,0.1,0.5", "--policy", "tierfs", "--check",
             path])
    assert r.returncode == 0, r.stderr
    assert len(parse(r.stdout)) == 3


REFS = ("lru", "arc", "s3fifo", "sieve", "2q")
TRACE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "contrib",
                     "replay", "traces", "cloudphysics.csv.zst")


def test_order_on_the_real_trace():
    """At every size, tierfs's order misses at most as often as the best of LRU, ARC, S3-FIFO,
    SIEVE and 2Q (+0.005 for rounding; the order it replaced missed 0.326 against LRU's
    0.214 at 1 %)."""
    r = run(["--policy", ",".join(("tierfs",) + REFS), TRACE])
    assert r.returncode == 0, r.stderr
    rows = parse(r.stdout)
    for f in (0.01, 0.05, 0.1, 0.25):
        best = min(float(rows[(p, f)][1]) for p in REFS)
        assert float(rows[("tierfs", f)][1]) <= best + 0.005, (f, rows[("tierfs", f)], best)


def test_order_keeps_part_of_a_loop(tmpdir_short):
    """Epochs over a data set twice the cache: LRU misses every access, tierfs's order keeps a
    stable half of the data set (within 0.03 of Belady's optimum)."""
    path = os.path.join(tmpdir_short, "loop.csv")
    gen = os.path.join(os.path.dirname(TRACE), "..", "gen_trace.py")
    with open(path, "w") as f:
        subprocess.run(["/usr/bin/python3", gen, "loop", "--seed", "1", "--requests", "40000"],
                       stdout=f, check=True)
    r = run(["--policy", "tierfs,lru,belady", "--sizes", "0.5", path])
    assert r.returncode == 0, r.stderr
    rows = parse(r.stdout)
    assert float(rows[("lru", 0.5)][1]) == 1.0
    assert float(rows[("tierfs", 0.5)][1]) <= float(rows[("belady", 0.5)][1]) + 0.03, rows
