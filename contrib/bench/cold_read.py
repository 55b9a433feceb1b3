#!/usr/bin/python3
"""Cold sequential read of one object: tierfs (a fresh mount each run, so nothing is cached)
against curl fetching the same object from the same s3rver (the limit), as a ratio.

    contrib/bench/cold_read.py [--size-mib 64] [--runs 5] [--chunk-size 1M] [--readahead 16M]

Prints MB/s per run, the median, min and max, and tierfs / curl.  A benchmark, not a test."""

import argparse
import hashlib
import os
import statistics
import time

from benchlib import curl_get, util


def curl_read(endpoint, bucket, key):
    return curl_get(endpoint, bucket, key)[0]


def tierfs_read(endpoint, bucket, key, opts, want_sha):
    mnt = util.scratch_dir("bench-")   # its log lands beside it, removed at exit too
    with util.Mount(bucket, mnt, endpoint, opts) as m:
        path = os.path.join(m.mnt, key)
        os.stat(path)   # lookup outside the timed part, as curl has no lookup
        buf = bytearray(1 << 20)
        t0 = time.monotonic()
        with open(path, "rb", buffering=0) as f:   # like curl -o /dev/null: read, discard
            while f.readinto(buf):
                pass
        took = time.monotonic() - t0
        with open(path, "rb") as f:   # then check the bytes, outside the timed part
            assert hashlib.sha256(f.read()).hexdigest() == want_sha, "wrong bytes"
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--chunk-size", default="1M")
    ap.add_argument("--readahead", default=None)
    ap.add_argument("--opts", default="", help="more tierfs options, comma-separated")
    a = ap.parse_args()
    srv = util.S3Server().start()
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="bench")
        body = os.urandom(a.size_mib << 20)
        s3.put_object(Bucket="bench", Key="big.bin", Body=body)
        sha = hashlib.sha256(body).hexdigest()
        opts = [f"chunk_size={a.chunk_size}"] + ([f"readahead={a.readahead}"] if a.readahead else [])
        opts += [o for o in a.opts.split(",") if o]
        mb = len(body) / 1e6
        res = {"curl": [], "tierfs": []}
        # one warm-up round for both, not counted: s3rver (node) is slow on its first requests
        curl_read(srv.endpoint, "bench", "big.bin")
        tierfs_read(srv.endpoint, "bench", "big.bin", opts, sha)
        for _ in range(a.runs):   # interleaved, so that drift hits both alike
            res["curl"].append(mb / curl_read(srv.endpoint, "bench", "big.bin"))
            res["tierfs"].append(mb / tierfs_read(srv.endpoint, "bench", "big.bin", opts, sha))
        print(f"cold sequential read of {a.size_mib} MiB from s3rver on loopback, "
              f"{a.runs} runs, tierfs -o {','.join(opts)}")
        for k, v in res.items():
            print(f"  {k:7s} median {statistics.median(v):7.1f} MB/s  "
                  f"(min {min(v):.1f}, max {max(v):.1f})  runs: {', '.join(f'{x:.0f}' for x in v)}")
        print(f"  ratio tierfs/curl: {statistics.median(res['tierfs']) / statistics.median(res['curl']):.2f}")
    finally:
        srv.cleanup()


if __name__ == "__main__":
    main()
