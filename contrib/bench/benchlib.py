"""What the benchmark scripts share: the test helpers (tests/util.py), dropping the page
cache, a timed sequential read, the FUSE ceiling of a read, and a signed curl GET straight
from the S3 server."""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import util  # noqa: E402,F401  (re-exported for the scripts)

EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed_read(path):
    """Reads path sequentially in 1 MiB reads, discarding the bytes: (bytes, seconds)."""
    buf = bytearray(1 << 20)
    n = 0
    t0 = time.monotonic()
    with open(path, "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += k
    return n, time.monotonic() - t0


def fuse_ceiling_prog():
    """contrib/bench/fuse_ceiling, built beside the tierfs under test, or None."""
    prog = os.path.join(os.path.dirname(os.path.dirname(util.tierfs_bin())), "contrib", "bench",
                        "fuse_ceiling")
    return prog if os.access(prog, os.X_OK) else None


def fuse_ceiling(size_mib, work, read_ahead_kb=1024):
    """MB/s of a sequential read through FUSE of bytes the daemon holds in memory, the page
    cache dropped (contrib/bench/fuse_ceiling.c, built beside the tierfs under test; the same
    FUSE set-up and kernel readahead as tierfs): what a warm read through FUSE cannot beat.
    None when the program is not built."""
    prog = fuse_ceiling_prog()
    if not prog:
        return None
    mnt = tempfile.mkdtemp(prefix="ceiling-", dir=work)
    p = subprocess.Popen([prog, mnt, str(size_mib)])
    try:
        util.wait_for(lambda: util.in_mount_table(mnt) or p.poll() is not None, 20,
                      "fuse_ceiling to mount")
        assert p.poll() is None, "fuse_ceiling failed to mount"
        with open("/proc/self/mountinfo") as f:   # its read_ahead_kb, as tierfs sets its own
            dev = [ln.split()[2] for ln in f if ln.split()[4] == os.path.realpath(mnt)][-1]
        with open(f"/sys/class/bdi/{dev}/read_ahead_kb", "w") as f:
            f.write(f"{read_ahead_kb}\n")
        drop_caches()
        n, t = timed_read(os.path.join(mnt, "data"))
        assert n == size_mib << 20, (n, size_mib)
        return n / t / 1e6
    finally:
        subprocess.run(["fusermount3", "-u", mnt], stderr=subprocess.DEVNULL)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        util.unmount_if_mounted(mnt)
        os.rmdir(mnt)


def curl_get(endpoint, bucket, key, rng=None):
    """GETs the object with curl's own SigV4, discarding it: (seconds in all, seconds to the
    first byte)."""
    cmd = ["curl", "-sf", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total}",
           "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", f"{util.ACCESS_KEY}:{util.SECRET_KEY}",
           "-H", f"x-amz-content-sha256: {EMPTY_SHA}", f"{endpoint}/{bucket}/{key}"]
    if rng:
        cmd[1:1] = ["-r", rng]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    return float(out[1]), float(out[0])
