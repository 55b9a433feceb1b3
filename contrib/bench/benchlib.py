"""What the benchmark scripts share: the test helpers (tests/util.py), dropping the page
cache, a timed sequential read, and a signed curl GET straight from the S3 server."""

import os
import subprocess
import sys
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
