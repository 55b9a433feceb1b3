"""Bad input through the file system: random names and values for the user.tierfs.*
attributes, random, huge and binary lines for the control file.  Every call succeeds or fails
with a clear errno; the daemon never crashes and its state stays consistent."""

import errno
import json
import os
import random

import util

ALLOWED = {errno.EINVAL, errno.EPERM, errno.ENODATA, errno.ENOTSUP, errno.ERANGE, errno.EEXIST,
           errno.ENOENT, errno.E2BIG, errno.ENAMETOOLONG}


def rand_bytes(r, n):
    return bytes(r.randrange(256) for _ in range(n))


def test_fuzz_xattrs_and_ctl(s3, bucket, mount):
    util.put_many(s3, bucket, {"d/f": b"payload", "g": b"other"})
    m = mount(bucket, expect_log=[r"ctl: refusing", r"refusing user.tierfs.ttl",
                                  r"warm '.*'", r"ctl: warm", r"ctl: invalidate",
                                  r"ctl: purge", r"ctl: demote", r"statistics reset"])
    r = random.Random(2026)
    paths = [os.path.join(m.mnt, p) for p in ("d/f", "g", "d", "")]
    names = ["user.tierfs.ttl", "user.tierfs.ttl.effective", "user.tierfs.tier",
             "user.tierfs.etag", "user.tierfs.expires", "user.tierfs.", "user.tierfs.ttlx",
             "user.other", "trusted.x", "security.y"]
    values = [b"", b"5", b"never", b"-1", b"1" * 200, b"5m\n", b"\x00", b"0", b"99999999999d"]
    calls = 0
    for _ in range(600):
        path = r.choice(paths)
        name = r.choice(names) if r.random() < 0.7 else "user.tierfs." + rand_bytes(
            r, r.randrange(1, 40)).hex()
        value = r.choice(values) if r.random() < 0.6 else rand_bytes(r, r.randrange(0, 300))
        op = r.randrange(4)
        calls += 1
        try:
            if op == 0:
                os.setxattr(path, name, value, r.choice([0, os.XATTR_CREATE, os.XATTR_REPLACE]))
            elif op == 1:
                os.getxattr(path, name)
            elif op == 2:
                os.removexattr(path, name)
            else:
                os.listxattr(path)
        except OSError as e:
            assert e.errno in ALLOWED, (op, name, value, e)
    ctl = os.path.join(m.mnt, ".tierfs", "ctl")
    words = ["invalidate", "warm", "demote", "purge", "reset-stats", "bogus", "", '"', "\\",
             "d", "d/f", "*", "[", "../..", "/", "g"]
    for _ in range(300):
        kind = r.randrange(4)
        if kind == 0:
            line = " ".join(r.choice(words) for _ in range(r.randrange(1, 5))).encode() + b"\n"
        elif kind == 1:
            line = rand_bytes(r, r.randrange(1, 200))
        elif kind == 2:
            line = b"invalidate " + b"x" * r.randrange(1000, 70000) + b"\n"
        else:
            line = b"\n".join(r.choice(words).encode() for _ in range(r.randrange(1, 8))) + b"\n"
        calls += 1
        try:
            with open(ctl, "wb", buffering=0) as f:
                f.write(line)
        except OSError as e:
            assert e.errno in ALLOWED, (line[:60], e)
    # still up, still consistent
    assert m.proc.poll() is None
    with open(os.path.join(m.mnt, ".tierfs", "stats.json")) as f:
        json.load(f)
    with open(os.path.join(m.mnt, "d", "f"), "rb") as f:
        assert f.read() == b"payload"
    os.setxattr(os.path.join(m.mnt, "g"), "user.tierfs.ttl", b"42")
    assert os.getxattr(os.path.join(m.mnt, "g"), "user.tierfs.ttl") == b"42"
    assert calls == 900
