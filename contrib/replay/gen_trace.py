#!/usr/bin/python3
"""Synthetic cache traces for tierfs-replay, reproducible from a seed, in its CSV form
(time_us,key,offset,size; one 4 KiB read inside a 1 MiB chunk per request).

    contrib/replay/gen_trace.py KIND [--seed N] [--requests N] > trace.csv

Kinds:
  zipf   popularity Zipf(1.0) over 10,000 chunks of three objects
  scan   a Zipf hot set of 2,000 chunks, and every 5,000 requests a sequential scan of 2,000
         chunks of a 20,000-chunk cold object, each scan where the last stopped (scan
         resistance: a scan's chunks come back only ten scans later)
  loop   epochs over one 4,000-chunk object, in order (a training loop; the working set is
         the data set, so --sizes 0.25,0.5,0.83 are caches of 1/4, 1/2 and 1/1.2 of it)
  mix    the three at once: a Zipf hot set, a loop over 3,000 chunks and scans, interleaved
"""
import argparse
import bisect
import random
import sys

CHUNK = 1 << 20


def zipf_sampler(rnd, n, alpha=1.0):
    cum, t = [], 0.0
    for k in range(1, n + 1):
        t += 1.0 / k ** alpha
        cum.append(t)
    order = list(range(n))
    rnd.shuffle(order)      # popularity not in chunk order
    return lambda: order[bisect.bisect_left(cum, rnd.random() * t)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=("zipf", "scan", "loop", "mix"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--requests", type=int, default=200000)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    out = sys.stdout
    out.write("time_us,key,offset,size\n")
    t = 0

    def emit(key, chunk):
        nonlocal t
        out.write(f"{t},{key},{chunk * CHUNK + rnd.randrange(0, CHUNK - 4096, 4096)},4096\n")
        t += 1000

    if a.kind == "zipf":
        z = zipf_sampler(rnd, 10000)
        for _ in range(a.requests):
            c = z()
            emit(f"obj{c % 3}", c // 3)
    elif a.kind == "scan":
        z = zipf_sampler(rnd, 2000)
        pos = 0
        for i in range(a.requests):
            if i % 5000 == 0 and i:
                for _ in range(2000):
                    emit("cold", pos % 20000)
                    pos += 1
            emit("hot", z())
    elif a.kind == "loop":
        n = 4000
        for i in range(a.requests):
            emit("epochs", i % n)
    else:
        z = zipf_sampler(rnd, 2000)
        loop, scan = 0, 0
        for i in range(a.requests):
            r = rnd.random()
            if r < 0.5:
                emit("hot", z())
            elif r < 0.9:
                emit("epochs", loop % 3000)
                loop += 1
            else:
                emit("scan", scan)
                scan += 1


if __name__ == "__main__":
    main()
