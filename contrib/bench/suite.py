#!/usr/bin/python3
"""The benchmark suite: tierfs against s3fs (-o use_cache) and rclone mount
(--vfs-cache-mode full), and against the limits of this machine, on one S3 server on loopback,
in one run.  Run through contrib/bench/run, which installs what it needs first.

    contrib/bench/run [--quick] [--rtt-ms 20 [--conn-mbps 40]] [--server rgw] [--runs 3]
                      [--size-mib 1024] [--only tierfs,s3fs]

The real S3 model: --rtt-ms 20 --conn-mbps 40 (tens of ms away, tens of MB/s per connection,
the C delay proxy of the build); --server rgw puts Ceph's RADOS Gateway (contrib/rgw.sh)
where s3rver was.

Workloads (each figure the median of --runs runs, with min and max):
  cold_seq    cold sequential read of a large object, fresh mount and empty cache (MB/s)
  cold_seq_x4 four readers of four cold objects (a quarter of its size each) at once (MB/s)
  warm_seq    the same read after a remount with the page cache dropped (disk cache, MB/s)
  hot_seq     the same read again in the same mount (MB/s)
  rand4k      4 KiB random reads with O_DIRECT on the warm file, fio: IOPS, p50 and p99 (ms)
  ls_cold     ls -l of a directory of --files entries, fresh mount (s)
  ls_warm     the same ls -l again, in the same mount (s)
  small_cold  reading --read-files files of 4-64 KiB in name order, fresh mount (files/s)
  small_warm  the same after a remount with the page cache dropped (files/s)
  ttfb        time to the first 4 KiB of a cold 64 MiB file (ms)
  rss         the daemon's peak resident memory over the run (MiB, VmHWM)
Limits: curl from the S3 server, with as many parallel ranged GETs as raise its throughput
(cold_seq, cold_seq_x4; the table says how many), and one GET (ttfb), a local file on the caches' file system with
the page cache dropped (warm_seq, small_warm, ls, rand4k with O_DIRECT) and in the page cache
(hot_seq).

Output: a table on the terminal, bench-results/DATE.json and bench-results/DATE.png.  Run as
root (the page cache is dropped through /proc/sys/vm/drop_caches).  Nothing stays mounted or
running afterwards, even when interrupted."""

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from benchlib import curl_get as signed_get, drop_caches, timed_read as read_seq, util  # noqa: E402

BUCKET = "bench"
BIG4 = ["four/a.bin", "four/b.bin", "four/c.bin", "four/d.bin"]
MiB = 1 << 20

# name, unit, higher is better, label
WORKLOADS = [
    ("cold_seq", "MB/s", True, "cold sequential read"),
    ("cold_seq_x4", "MB/s", True, "four cold readers of four objects"),
    ("warm_seq", "MB/s", True, "warm read after remount"),
    ("hot_seq", "MB/s", True, "hot re-read, same mount"),
    ("rand4k_iops", "IOPS", True, "4 KiB random O_DIRECT, IOPS"),
    ("rand4k_p50", "ms", False, "4 KiB random O_DIRECT, p50"),
    ("rand4k_p99", "ms", False, "4 KiB random O_DIRECT, p99"),
    ("ls_cold", "s", False, "ls -l of the big directory, cold"),
    ("ls_warm", "s", False, "ls -l of the big directory, again"),
    ("small_cold", "files/s", True, "small files in name order, cold"),
    ("small_warm", "files/s", True, "small files after remount"),
    ("ttfb", "ms", False, "time to first byte, cold file"),
    ("rss", "MiB", False, "daemon peak RSS"),
]

LIVE = []   # everything to stop on the way out: objects with a .kill()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def timed_read(path):
    n, t = read_seq(path)
    return n / t / 1e6


def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def ttfb(path):
    t0 = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        f.read(4096)
    return (time.monotonic() - t0) * 1000


def ls_l(path):
    t0 = time.monotonic()
    subprocess.run(["ls", "-l", path], stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - t0


def read_files(paths):
    t0 = time.monotonic()
    for p in paths:
        with open(p, "rb") as f:
            f.read()
    return len(paths) / (time.monotonic() - t0)


def fio_rand(path, seconds, size):
    """IOPS, p50 and p99 in ms of 4 KiB O_DIRECT random reads, or an error string."""
    r = subprocess.run(["fio", "--name=rand4k", f"--filename={path}", "--readonly",
                        "--rw=randread", "--bs=4k", "--direct=1", "--ioengine=psync",
                        f"--size={size}", f"--runtime={seconds}", "--time_based",
                        "--output-format=json"], capture_output=True, text=True)
    if r.returncode != 0:
        return (r.stderr.strip() or r.stdout.strip()).splitlines()[-1][:120]
    j = json.loads(r.stdout[r.stdout.index("{"):])
    rd = j["jobs"][0]["read"]
    pct = rd["clat_ns"]["percentile"]
    return rd["iops"], pct["50.000000"] / 1e6, pct["99.000000"] / 1e6


def peak_rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def force_umount(mnt):
    for cmd in (["fusermount3", "-u", "-z", mnt], ["fusermount", "-u", "-z", mnt]):
        if os.path.ismount(mnt):
            subprocess.run(cmd, stderr=subprocess.DEVNULL)


class Proc:
    """A process to stop on the way out."""

    def __init__(self, popen):
        self.p = popen
        LIVE.append(self)

    def kill(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


class Contender:
    name = "?"

    def __init__(self, endpoint, work):
        self.endpoint, self.work = endpoint, work
        self.mnt = os.path.join(work, self.name + "-mnt")
        self.cache = os.path.join(work, self.name + "-cache")
        self.proc = None
        self.rss = 0.0
        os.makedirs(self.mnt, exist_ok=True)
        LIVE.append(self)

    def mount(self, fresh):
        if fresh:
            shutil.rmtree(self.cache, ignore_errors=True)
        os.makedirs(self.cache, exist_ok=True)
        self.proc = subprocess.Popen(self.command(), env=self.env(), stdout=self.logf(),
                                     stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log in "
                                   f"{self.logpath()}")
            return os.path.ismount(self.mnt)
        util.wait_for(up, 60, f"{self.name} to mount")

    def umount(self):
        rss = peak_rss_mib(self.proc.pid)
        if rss:
            self.rss = max(self.rss, rss)
        for cmd in (["fusermount3", "-u", self.mnt], ["fusermount", "-u", self.mnt]):
            if os.path.ismount(self.mnt):
                subprocess.run(cmd, stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        force_umount(self.mnt)
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                util.abort_fuse_connection(self.mnt)

    def logpath(self):
        return os.path.join(self.work, self.name + ".log")

    def logf(self):
        return open(self.logpath(), "ab")

    def env(self):
        return dict(os.environ)


class Tierfs(Contender):
    name = "tierfs"

    def command(self):
        return [util.tierfs_bin(), "-f", "-o",
                f"endpoint={self.endpoint},cache_dir={self.cache},l2_min_free=0,ttl=1h",
                BUCKET, self.mnt]

    def env(self):
        return util.daemon_env(self.work)


class S3fs(Contender):
    name = "s3fs"

    def command(self):
        passwd = os.path.join(self.work, "passwd-s3fs")
        with open(passwd, "w") as f:
            f.write(f"{util.ACCESS_KEY}:{util.SECRET_KEY}\n")
        os.chmod(passwd, 0o600)
        return ["s3fs", BUCKET, self.mnt, "-f", "-o", f"url={self.endpoint}",
                "-o", "use_path_request_style", "-o", f"passwd_file={passwd}",
                "-o", f"use_cache={self.cache}", "-o", "stat_cache_expire=3600",
                "-o", "max_stat_cache_size=200000"]


class Rclone(Contender):
    name = "rclone"

    def command(self):
        conf = os.path.join(self.work, "rclone.conf")
        open(conf, "w").close()
        return ["rclone", "mount", f"s3bench:{BUCKET}", self.mnt, "--config", conf,
                "--vfs-cache-mode", "full", "--cache-dir", self.cache,
                "--dir-cache-time", "1h", "--log-level", "NOTICE"]

    def env(self):
        # AWS_CA_BUNDLE in the environment makes rclone 1.60 fail at start ("unable to load
        # custom CA bundle ... unsupported transport"); the endpoint is plain http anyway
        e = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        e.update(RCLONE_CONFIG_S3BENCH_TYPE="s3", RCLONE_CONFIG_S3BENCH_PROVIDER="Other",
                 RCLONE_CONFIG_S3BENCH_ENDPOINT=self.endpoint,
                 RCLONE_CONFIG_S3BENCH_ACCESS_KEY_ID=util.ACCESS_KEY,
                 RCLONE_CONFIG_S3BENCH_SECRET_ACCESS_KEY=util.SECRET_KEY,
                 RCLONE_CONFIG_S3BENCH_REGION=util.REGION,
                 RCLONE_CONFIG_S3BENCH_FORCE_PATH_STYLE="true")
        return e


CONTENDERS = {"tierfs": Tierfs, "s3fs": S3fs, "rclone": Rclone}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_proxy(target_port, rtt_ms, conn_mbps=0):
    """The S3 model: the C delay proxy of the build (a small fraction of the Python one's CPU,
    which on 2 cores would take what the clients need), else delay_proxy.py."""
    port = free_port()
    native = os.path.join(ROOT, "build", "contrib", "bench", "delay_proxy")
    cmd = [native] if os.access(native, os.X_OK) else [sys.executable,
                                                       os.path.join(HERE, "delay_proxy.py")]
    p = Proc(subprocess.Popen(cmd + ["--listen-port", str(port), "--target-port", str(target_port),
                                     "--rtt-ms", str(rtt_ms), "--conn-mbps", str(conn_mbps)]))

    def up():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    util.wait_for(up, 20, "the delay proxy")
    return p, f"http://127.0.0.1:{port}"


def curl_get(endpoint, key, rng=None):
    """Seconds for the whole object, and seconds to its first byte."""
    return signed_get(endpoint, BUCKET, key, rng)


def big_bytes(size_mib):
    """The large object's bytes: the same every time (random.randbytes stops at 256 MiB)."""
    rnd = random.Random(1)
    return b"".join(rnd.randbytes(16 * MiB) for _ in range(size_mib // 16)) + \
        rnd.randbytes(size_mib % 16 * MiB)


def seed(s3, a):
    log(f"seeding: big.bin {a.size_mib} MiB, ttfb.bin 64 MiB, {a.files} small files")
    s3.create_bucket(Bucket=BUCKET)
    rnd = random.Random(2)
    big = big_bytes(a.size_mib)
    s3.put_object(Bucket=BUCKET, Key="big.bin", Body=big)
    sha = hashlib.sha256(big).hexdigest()
    del big
    s3.put_object(Bucket=BUCKET, Key="ttfb.bin", Body=rnd.randbytes(64 * MiB))
    for k in BIG4:   # a quarter of big.bin's size each
        s3.put_object(Bucket=BUCKET, Key=k, Body=os.urandom(x4_mib(a) * MiB))
    small = {f"many/f{i:05d}.dat": rnd.randbytes(rnd.randint(4096, 65536))
             for i in range(a.files)}
    util.put_many(s3, BUCKET, small, workers=24)
    return sha, small


def limits(a, endpoint, work, small, res):
    """The physical limits, measured with the same data on the same machine."""
    log("limits: curl, local file, page cache, local small files")
    local = os.path.join(work, "local")
    os.makedirs(os.path.join(local, "many"), exist_ok=True)
    best, n = parallel_curl(endpoint, ["big.bin"], a.size_mib * MiB)
    res.add("cold_seq", "limit", best)
    log(f"limits: cold_seq {best:.0f} MB/s with {n} parallel ranged GETs")
    res.limit_streams["cold_seq"] = n
    best4, n4 = parallel_curl(endpoint, BIG4, x4_mib(a) * MiB)
    res.add("cold_seq_x4", "limit", best4)
    res.limit_streams["cold_seq_x4"] = n4
    _, first = curl_get(endpoint, "ttfb.bin", "0-4095")
    res.add("ttfb", "limit", first * 1000)
    path = os.path.join(local, "big.bin")
    with open(path, "wb") as f:
        f.write(big_bytes(a.size_mib))
    for k, v in small.items():
        with open(os.path.join(local, k), "wb") as f:
            f.write(v)
    drop_caches()
    res.add("warm_seq", "limit", timed_read(path))
    res.add("hot_seq", "limit", timed_read(path))
    r = fio_rand(path, a.fio_seconds, a.size_mib * MiB)
    if isinstance(r, tuple):
        res.add("rand4k_iops", "limit", r[0])
        res.add("rand4k_p50", "limit", r[1])
        res.add("rand4k_p99", "limit", r[2])
    names = sorted(small)[:a.read_files]
    drop_caches()
    res.add("ls_cold", "limit", ls_l(os.path.join(local, "many")))
    res.add("ls_warm", "limit", ls_l(os.path.join(local, "many")))
    drop_caches()
    res.add("small_warm", "limit", read_files([os.path.join(local, k) for k in names]))
    shutil.rmtree(local, ignore_errors=True)


def x4_mib(a):
    return max(16, a.size_mib // 4)


def parallel_curl(endpoint, keys, size):
    """The network's limit: the objects GET with curl in 1..32 parallel ranged parts (as many
    per object), the best aggregate MB/s and how many GETs in flight gave it."""
    from concurrent.futures import ThreadPoolExecutor
    best, best_n = 0.0, 0
    for per in (1, 4, 8, 16, 24, 32):
        n = per * len(keys) if len(keys) == 1 else max(per, len(keys))
        parts = []
        for k in keys:
            each = max(1, n // len(keys))
            step = -(-size // each)
            parts += [(k, f"{o}-{min(size, o + step) - 1}") for o in range(0, size, step)]
        t0 = time.monotonic()
        with ThreadPoolExecutor(len(parts)) as ex:
            list(ex.map(lambda kr: curl_get(endpoint, kr[0], kr[1]), parts))
        mbs = size * len(keys) / (time.monotonic() - t0) / 1e6
        if mbs > best * 1.03:
            best, best_n = mbs, len(parts)
        elif per >= 8:
            break   # more buys nothing
    return best, best_n


def read_many(paths):
    """Reads the files at once, one thread each: aggregate MB/s."""
    from concurrent.futures import ThreadPoolExecutor
    t0 = time.monotonic()
    with ThreadPoolExecutor(len(paths)) as ex:
        n = sum(b for b, _ in ex.map(read_seq, paths))
    return n / (time.monotonic() - t0) / 1e6


def one_run(c, a, sha, small, res, check):
    names = [os.path.join(c.mnt, k) for k in sorted(small)[:a.read_files]]
    big = os.path.join(c.mnt, "big.bin")
    # cold: empty cache, fresh mount
    drop_caches()
    c.mount(fresh=True)
    try:
        res.add("ttfb", c.name, ttfb(os.path.join(c.mnt, "ttfb.bin")))
        os.stat(big)   # the lookup outside the timed read, as curl has none
        res.add("cold_seq", c.name, timed_read(big))
        for k in BIG4:
            os.stat(os.path.join(c.mnt, k))
        res.add("cold_seq_x4", c.name, read_many([os.path.join(c.mnt, k) for k in BIG4]))
        res.add("hot_seq", c.name, timed_read(big))
        if check and sha_of(big) != sha:
            raise RuntimeError(f"{c.name} served wrong bytes of big.bin")
        res.add("ls_cold", c.name, ls_l(os.path.join(c.mnt, "many")))
        res.add("ls_warm", c.name, ls_l(os.path.join(c.mnt, "many")))
        res.add("small_cold", c.name, read_files(names))
    finally:
        c.umount()
    # warm: remount on the same cache, page cache dropped
    drop_caches()
    c.mount(fresh=False)
    try:
        os.stat(big)
        res.add("warm_seq", c.name, timed_read(big))
        drop_caches()
        os.stat(os.path.join(c.mnt, "many"))
        res.add("small_warm", c.name, read_files(names))
        if check:
            for p in names[:50]:
                with open(p, "rb") as f:
                    if f.read() != small["many/" + os.path.basename(p)]:
                        raise RuntimeError(f"{c.name} served wrong bytes of {p}")
        r = fio_rand(big, a.fio_seconds, a.size_mib * MiB)
        if isinstance(r, tuple):
            res.add("rand4k_iops", c.name, r[0])
            res.add("rand4k_p50", c.name, r[1])
            res.add("rand4k_p99", c.name, r[2])
        else:
            for w in ("rand4k_iops", "rand4k_p50", "rand4k_p99"):
                res.fail(w, c.name, f"fio: {r}")
    finally:
        c.umount()


class Results:
    def __init__(self):
        self.v = {}      # workload -> who -> [values]
        self.notes = {}  # workload -> who -> why there is no figure
        self.limit_streams = {}  # workload -> parallel GETs that gave the limit

    def add(self, w, who, x):
        self.v.setdefault(w, {}).setdefault(who, []).append(float(x))

    def fail(self, w, who, why):
        self.notes.setdefault(w, {})[who] = why

    def stat(self, w, who):
        xs = self.v.get(w, {}).get(who)
        if not xs:
            return None
        return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


def fmt(x):
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def report(res, who, a, machine):
    lines = []
    lines.append(f"tierfs benchmark suite, {machine['date']}: {machine['cores']} cores, "
                 f"{machine['mem_gib']} GiB, {machine['kernel']}; S3: "
                 + ("Ceph RGW" if a.server == "rgw" else "s3rver") + " on loopback"
                 + (f" behind a {a.rtt_ms:g} ms RTT proxy" if a.rtt_ms else "")
                 + (f" capping each connection at {a.conn_mbps:g} MB/s" if a.conn_mbps else "")
                 + f"; {a.runs} runs each, median (min-max)")
    lines.append(f"big object {a.size_mib} MiB; directory {a.files} entries; "
                 f"{a.read_files} small files read; cold limits: parallel ranged curl ("
                 + ", ".join(f"{w} with {n} GETs" for w, n in res.limit_streams.items()) + ")")
    hdr = f"{'workload':36s} {'unit':8s} " + " ".join(f"{n:>24s}" for n in who + ["limit"])
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for w, unit, higher, label in WORKLOADS:
        base = res.stat(w, "tierfs")
        lim = res.stat(w, "limit")
        cells = []
        for n in who + ["limit"]:
            s = res.stat(w, n)
            if s is None:
                why = res.notes.get(w, {}).get(n)
                cells.append(f"{'n/a' if why or n != 'limit' else '-':>24s}")
                continue
            cell = f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"
            if n != "tierfs" and base and n != "limit":
                r = s["median"] / base["median"] if base["median"] else 0
                cell += f" {r:.2f}x"
            cells.append(f"{cell:>24s}")
        lines.append(f"{label:36s} {unit:8s} " + " ".join(cells))
        ratios = []
        for n in who:
            s = res.stat(w, n)
            if s and lim and lim["median"]:
                r = s["median"] / lim["median"]
                ratios.append(f"{n} {r:.2f}")
        if ratios:
            lines.append(f"{'':36s} {'':8s} of the limit: " + ", ".join(ratios)
                         + ("" if higher else " (lower is better)"))
    notes = [(w, n, why) for w, d in res.notes.items() for n, why in d.items()]
    for w, n, why in notes:
        lines.append(f"n/a: {n} on {w}: {why}")
    lines.append("ratios after a figure: to tierfs (for s3fs and rclone); 'of the limit': "
                 "contender / limit")
    return "\n".join(lines)


def chart(res, who, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ws = [w for w in WORKLOADS if any(res.stat(w[0], n) for n in who)]
    cols = 3
    rows = (len(ws) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.6, rows * 2.6))
    colors = {"tierfs": "#1f77b4", "s3fs": "#ff7f0e", "rclone": "#2ca02c", "limit": "#7f7f7f"}
    for ax, (w, unit, higher, label) in zip(axes.flat, ws):
        names, vals, lo, hi = [], [], [], []
        for n in who + ["limit"]:
            s = res.stat(w, n)
            if s:
                names.append(n)
                vals.append(s["median"])
                lo.append(s["median"] - s["min"])
                hi.append(s["max"] - s["median"])
        ax.barh(names, vals, xerr=[lo, hi], color=[colors.get(n, "#999") for n in names])
        ax.invert_yaxis()
        ax.set_title(f"{label} ({unit}, {'higher' if higher else 'lower'} is better)",
                     fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(ws):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def machine_info():
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / (1 << 20)
    return {"cores": os.cpu_count(), "mem_gib": round(mem), "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small data and 2 runs: a few minutes, for development")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--size-mib", type=int)
    ap.add_argument("--files", type=int)
    ap.add_argument("--read-files", type=int)
    ap.add_argument("--fio-seconds", type=int)
    ap.add_argument("--rtt-ms", type=float, default=0, help="put the S3 server this far away")
    ap.add_argument("--conn-mbps", type=float, default=0,
                    help="with --rtt-ms: cap each connection at this many MB/s (the real S3 "
                         "model: --rtt-ms 20 --conn-mbps 40)")
    ap.add_argument("--server", choices=("s3rver", "rgw"), default="s3rver",
                    help="the S3 server: s3rver, or Ceph RGW (contrib/rgw.sh)")
    ap.add_argument("--only", default="tierfs,s3fs,rclone")
    ap.add_argument("--dir", default="/var/tmp", help="where mounts and caches go")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-results"))
    a = ap.parse_args()
    q = a.quick
    a.runs = a.runs or (2 if q else 3)
    a.size_mib = a.size_mib or (128 if q else 1024)
    a.files = a.files or (2000 if q else 10000)
    a.read_files = min(a.read_files or (300 if q else 1000), a.files)
    a.fio_seconds = a.fio_seconds or (3 if q else 10)
    who = [n for n in a.only.split(",") if n]
    for n in who:
        if n not in CONTENDERS:
            ap.error(f"unknown contender {n}")
    if os.geteuid() != 0:
        sys.exit("run as root: the page cache is dropped between runs")

    def on_term(*_):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="tierfs-bench-", dir=a.dir)
    srv = util.RgwServer() if a.server == "rgw" else util.S3Server()
    res = Results()
    machine = machine_info()
    try:
        srv.start()
        endpoint = srv.endpoint
        if a.rtt_ms:
            _, endpoint = start_proxy(int(endpoint.rsplit(":", 1)[1]), a.rtt_ms, a.conn_mbps)
        sha, small = seed(util.s3_client(srv.endpoint), a)
        cs = {n: CONTENDERS[n](endpoint, work) for n in who}
        for r in range(a.runs):
            limits(a, endpoint, work, small, res)
            for n in who:   # interleaved: every contender sees the same machine state
                if not shutil.which(cs[n].command()[0]):
                    for w in WORKLOADS:
                        res.fail(w[0], n, f"{cs[n].command()[0]} is not installed")
                    continue
                log(f"run {r + 1}/{a.runs}: {n}")
                try:
                    one_run(cs[n], a, sha, small, res, check=(r == 0))
                except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                    cs[n].kill()
                    try:
                        with open(cs[n].logpath(), errors="replace") as f:
                            tail = " | ".join(f.read().strip().splitlines()[-3:])
                    except OSError:
                        tail = ""
                    log(f"{n} failed: {e}: {tail}")
                    res.fail("cold_seq", n, f"{str(e)[:200]}: {tail[:300]}")
        for n in who:
            if cs[n].rss:
                res.add("rss", n, cs[n].rss)
    finally:
        for x in reversed(LIVE):
            try:
                x.kill()
            except Exception as e:  # keep stopping the others
                log(f"cleanup: {e}")
        srv.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    text = report(res, who, a, machine)
    print(text)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(a.out, f"{stamp}{'-quick' if q else ''}{f'-rtt{a.rtt_ms:g}' if a.rtt_ms else ''}"
                        f"{f'-cap{a.conn_mbps:g}' if a.conn_mbps else ''}"
                        f"{'-rgw' if a.server == 'rgw' else ''}")
    with open(base + ".json", "w") as f:
        json.dump({"machine": machine, "args": vars(a), "contenders": who,
                   "limit_streams": res.limit_streams,
                   "workloads": {w[0]: {"unit": w[1], "higher_is_better": w[2], "label": w[3],
                                        "results": {n: res.stat(w[0], n)
                                                    for n in who + ["limit"]
                                                    if res.stat(w[0], n)},
                                        "not_available": res.notes.get(w[0], {})}
                                 for w in WORKLOADS}}, f, indent=1)
    with open(base + ".txt", "w") as f:
        f.write(text + "\n")
    try:
        chart(res, who, base + ".png", text.splitlines()[0])
        log(f"written: {base}.json, {base}.txt, {base}.png")
    except ImportError:
        log(f"written: {base}.json, {base}.txt (no chart: python3-matplotlib is missing)")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: everything was unmounted and stopped")
