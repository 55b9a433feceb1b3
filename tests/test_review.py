"""Regressions of the review of the tier restructuring (issue 13): each test failed on the tree
before it, the way a user saw it."""

import errno
import os
import time

import pytest

import util

stats = util.tierfs_stats
ctl = util.tierfs_ctl


def until(t):
    """Sleeps until monotonic time t."""
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_listing_metadata_expires_with_the_listing(s3, bucket, mount):
    """Metadata from a cached listing is as old as the listing: a second `ls` inside the TTL
    must not give the kernel the whole TTL again (it used to stay fresh for up to twice the
    TTL, and a read after the object changed failed with EIO)."""
    s3.put_object(Bucket=bucket, Key="d/f", Body=b"old")
    ttl = 10
    m = mount(bucket, [f"ttl={ttl}"])
    d = os.path.join(m.mnt, "d")
    t0 = time.monotonic()
    assert os.listdir(d) == ["f"]
    lists = stats(m.mnt)["tiers"]["s3"]["list"]
    until(t0 + ttl - 2)
    assert os.listdir(d) == ["f"]
    # served from the listing cached at t0 (else this test would test nothing)
    assert stats(m.mnt)["tiers"]["s3"]["list"] == lists
    s3.put_object(Bucket=bucket, Key="d/f", Body=b"new content")
    until(t0 + ttl + 2)          # past the listing's TTL, inside the second ls's
    with open(os.path.join(d, "f"), "rb") as f:
        assert f.read() == b"new content"


def test_invalidate_is_not_undone_by_the_predictor(s3, bucket, mount):
    """The interval predictor revalidates a file just before its predicted read; an
    invalidation after that must still make the next look at the file ask S3."""
    s3.put_object(Bucket=bucket, Key="f", Body=b"abc")
    m = mount(bucket, ["ttl=2", "prefetch_interval=1s"])
    path = os.path.join(m.mnt, "f")
    start = time.monotonic()
    fd = None
    for n in range(3):            # a reader every 3 s: the predictor learns the rhythm
        until(start + 3 * n)
        if fd is not None:
            os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        assert os.read(fd, 10) == b"abc"
    try:
        # the predictor confirms the file with S3 shortly before the next predicted read
        util.wait_for(lambda: stats(m.mnt)["prefetch"]["revalidations"] >= 1, 5,
                      "the predictor's revalidation")
        s3.put_object(Bucket=bucket, Key="f", Body=b"0123456789")
        ctl(m.mnt, "invalidate f")
        time.sleep(0.3)           # the kernel is told by the notifier thread
        assert os.stat(path).st_size == 10
        assert os.fstat(fd).st_size == 3    # the open handle is its version (inode.h)
    finally:
        os.close(fd)


@pytest.mark.parametrize("what", ["d", "d/new", "d/*", None])
def test_invalidate_clears_negative_entries(s3, bucket, mount, what):
    """A name looked up before its key existed is cached by the kernel as absent, for the
    directory's TTL; an invalidation (or a purge) takes that back."""
    s3.put_object(Bucket=bucket, Key="d/x", Body=b"x")
    m = mount(bucket, ["ttl=1h"])
    path = os.path.join(m.mnt, "d", "new")
    assert not os.path.exists(path)
    s3.put_object(Bucket=bucket, Key="d/new", Body=b"here")
    assert not os.path.exists(path)          # the TTL holds: still absent
    ctl(m.mnt, f"invalidate {what}" if what else "purge")
    util.wait_for(lambda: os.path.exists(path), 5, "the new name")
    with open(path, "rb") as f:
        assert f.read() == b"here"


def test_invalidate_reaches_every_inode(s3, bucket, mount):
    """Invalidating a large tree tells the kernel about every inode in it (once, at most
    1,024 were told and 256 queued; the others kept their old attributes)."""
    n = 1300
    keys = [f"many/f{i:05d}" for i in range(n)]
    util.put_many(s3, bucket, {k: b"x" for k in keys}, workers=32)
    m = mount(bucket, ["ttl=1h"])
    d = os.path.join(m.mnt, "many")
    names = sorted(os.listdir(d))
    assert len(names) == n
    for name in names:
        assert os.stat(os.path.join(d, name)).st_size == 1
    for i in range(0, n, 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
    ctl(m.mnt, "invalidate many")
    left = set(names)

    def gone():
        for name in list(left):
            try:
                os.stat(os.path.join(d, name))
            except FileNotFoundError:
                left.discard(name)
        return not left

    util.wait_for(gone, 60, "every deleted file gone", interval=0.5)


def test_control_file_limit_is_per_line(s3, bucket, mount):
    """The 64 KiB limit of ctl is per command line, not per write."""
    m = mount(bucket, expect_log=[r"ctl: refusing"])
    ctlpath = os.path.join(m.mnt, ".tierfs", "ctl")
    data = b"demote\n" * 10000                  # 70,000 bytes of short lines, in one write
    fd = os.open(ctlpath, os.O_WRONLY)
    try:
        assert os.write(fd, data) == len(data)
    finally:
        os.close(fd)
    # one line longer than 64 KiB is refused, in one write or over several
    for pieces in ([b"x" * 70000 + b"\n"], [b"y" * 40000, b"y" * 40000, b"\n"]):
        fd = os.open(ctlpath, os.O_WRONLY)
        try:
            with pytest.raises(OSError) as e:
                for p in pieces:
                    os.write(fd, p)
            assert e.value.errno == errno.EINVAL
        finally:
            os.close(fd)
    assert "line longer than 64 KiB" in m.log()
