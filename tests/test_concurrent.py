"""Many readers at once, over every tier, while the control file is used: the bytes are always
right.  contrib/test.sh also runs this file on the ThreadSanitizer build, where the daemon's
exit status and log say whether any data race happened."""

import hashlib
import os
import random
import threading

import util

KiB = 1024
MiB = 1024 * KiB


def test_concurrent_readers_over_all_tiers(s3, bucket, mount):
    rnd = random.Random(7)
    files = {f"c/f{i}.bin": rnd.randbytes(rnd.choice([300 * KiB, 1 * MiB, 3 * MiB + 17]))
             for i in range(6)}
    util.put_many(s3, bucket, files)
    # small memory tiers, so that chunks move between memory, L1, L2 and S3 while read
    m = mount(bucket, ["chunk_size=64K", "mem_cache=4M", "l1_size=512K", "promote_after=2",
                       "readahead=512K", "fetch_threads=3"])
    errors = []

    def reader(seed):
        r = random.Random(seed)
        try:
            for _ in range(25):
                key = r.choice(sorted(files))
                body = files[key]
                with open(os.path.join(m.mnt, key), "rb") as f:
                    if r.random() < 0.3:
                        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(body).digest()
                    else:
                        off = r.randrange(len(body))
                        n = r.randrange(1, 200 * KiB)
                        f.seek(off)
                        assert f.read(n) == body[off:off + n], (key, off, n)
        except Exception as e:   # reported by the main thread
            errors.append(e)

    def controller():
        try:
            for i in range(10):
                util.tierfs_stats(m.mnt)
                util.tierfs_ctl(m.mnt, ["demote", "invalidate c/f1.bin", "reset-stats"][i % 3])
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(6)]
    threads.append(threading.Thread(target=controller))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
