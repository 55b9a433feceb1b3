"""TTL through extended attributes, revalidation, the kernel page cache as a tier, and L1
promotion and demotion seen through user.tierfs.tier."""

import errno
import os
import subprocess
import time

import pytest

import util
from test_l2 import stats_of

TTL = "user.tierfs.ttl"


def read(path):
    with open(path, "rb") as f:
        return f.read()


def getx(path, name):
    return os.getxattr(path, name).decode()


def tier(path):
    return dict(kv.split("=") for kv in getx(path, "user.tierfs.tier").split())


def test_changed_behind_the_mount(s3, bucket, mount):
    """ttl=2s: the old content within the TTL, the new after it (waited out), counted."""
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"version one\n")
    m = mount(bucket, ["ttl=2"], expect_log=[r"changed in S3"])
    path = os.path.join(m.mnt, "doc.txt")
    assert read(path) == b"version one\n"
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"version two is longer\n")
    assert read(path) == b"version one\n"        # within the TTL
    time.sleep(2.5)                               # honestly past it
    assert read(path) == b"version two is longer\n"
    assert os.path.getsize(path) == len(b"version two is longer\n")
    m.__exit__(None, None, None)
    assert stats_of(m.log())["revalidations.changed"] >= 1


def test_change_found_by_revalidation_counted_once(s3, bucket, mount):
    """A file held open past its TTL: the kernel asks for its attributes, tierfs asks S3
    (If-None-Match) and finds a new version: one change, counted once (it once was twice).
    The new version is a new file at the name, as if renamed over the old one: the open
    handle keeps its version's attributes, the path shows the new one, with a new inode."""
    s3.put_object(Bucket=bucket, Key="held.txt", Body=b"one\n")
    m = mount(bucket, ["ttl=1"], expect_log=[r"changed in S3"])
    path = os.path.join(m.mnt, "held.txt")
    with open(path, "rb") as f:
        assert f.read() == b"one\n"
        old = os.fstat(f.fileno())
        s3.put_object(Bucket=bucket, Key="held.txt", Body=b"two, longer\n")
        time.sleep(1.5)                           # past the TTL
        held = os.fstat(f.fileno())
        assert (held.st_size, held.st_ino) == (len(b"one\n"), old.st_ino)
        now = os.stat(path)
        assert now.st_size == len(b"two, longer\n") and now.st_ino != old.st_ino
    assert read(path) == b"two, longer\n"
    m.__exit__(None, None, None)
    st = stats_of(m.log())
    assert st["revalidations.changed"] == 1, st


def test_unchanged_revalidation_keeps_the_cache(s3, bucket, mount):
    """An expired TTL asks S3 with If-None-Match; 304 keeps every cached chunk: no new GET."""
    body = os.urandom(3 * 65536)
    s3.put_object(Bucket=bucket, Key="same.bin", Body=body)
    m = mount(bucket, ["ttl=1", "chunk_size=64K"])
    path = os.path.join(m.mnt, "same.bin")
    assert read(path) == body
    time.sleep(1.5)
    assert read(path) == body            # a lookup past the TTL: its fresh metadata confirms
    with open(path, "rb") as f:          # a file held open past its TTL: the kernel asks for
        time.sleep(1.5)                  # its attributes, and tierfs asks S3 If-None-Match
        assert os.fstat(f.fileno()).st_size == len(body)
        assert f.read() == body
    m.__exit__(None, None, None)
    st = stats_of(m.log())
    assert st["revalidations.kept"] >= 2 and st["revalidations.changed"] == 0
    assert st["s3.get_bytes"] == len(body)   # every byte fetched exactly once: none refetched
    assert st["s3.head"] >= 1


def test_never_keeps_old_content(s3, bucket, mount):
    s3.put_object(Bucket=bucket, Key="pinned.txt", Body=b"old\n")
    m = mount(bucket, ["ttl=never"])
    path = os.path.join(m.mnt, "pinned.txt")
    assert read(path) == b"old\n"
    s3.put_object(Bucket=bucket, Key="pinned.txt", Body=b"new content\n")
    time.sleep(2)
    assert read(path) == b"old\n"
    assert getx(path, "user.tierfs.expires") == "never"


def test_directory_ttl_inherited_and_overridden(s3, bucket, mount):
    util.put_many(s3, bucket, {"d/a.txt": b"a1", "d/sub/b.txt": b"b1", "other.txt": b"o1"})
    m = mount(bucket, ["ttl=1"], expect_log=[r"changed in S3"])
    d, a, b = (os.path.join(m.mnt, p) for p in ("d", "d/a.txt", "d/sub/b.txt"))
    other = os.path.join(m.mnt, "other.txt")
    assert getx(a, "user.tierfs.ttl.effective") == "1 (mount default)"
    os.setxattr(d, TTL, b"never")
    assert getx(d, TTL) == "never"
    assert getx(a, "user.tierfs.ttl.effective") == "never (from /d/)"
    assert getx(b, "user.tierfs.ttl.effective") == "never (from /d/)"   # two levels down
    os.setxattr(a, TTL, b"2s")                                          # an override
    assert getx(a, TTL) == "2"
    assert getx(a, "user.tierfs.ttl.effective") == "2 (from /d/a.txt)"
    assert read(a) == b"a1" and read(b) == b"b1" and read(other) == b"o1"
    util.put_many(s3, bucket, {"d/a.txt": b"a2", "d/sub/b.txt": b"b2", "other.txt": b"o2"})
    time.sleep(2.5)
    assert read(other) == b"o2"    # the mount's 1 s
    assert read(a) == b"a2"        # its own 2 s
    assert read(b) == b"b1"        # the directory's never
    os.removexattr(a, TTL)
    with pytest.raises(OSError) as e:
        os.getxattr(a, TTL)
    assert e.value.errno == errno.ENODATA
    assert getx(a, "user.tierfs.ttl.effective") == "never (from /d/)"
    assert "user.tierfs.ttl" not in os.listxattr(a)
    assert os.listxattr(a) == []      # the derived ones are read by name, never listed
    assert TTL in os.listxattr(d)


def test_settings_survive_remount(s3server, s3, bucket, tmpdir_short):
    s3.put_object(Bucket=bucket, Key="k/f", Body=b"x")
    cache = os.path.join(tmpdir_short, "cache")
    opts = [f"cache_dir={cache}"]
    with util.Mount(bucket, os.path.join(tmpdir_short, "m1"), s3server.endpoint, opts) as m:
        os.setxattr(os.path.join(m.mnt, "k"), TTL, b"2h")
        os.setxattr(os.path.join(m.mnt, "k", "f"), TTL, b"30s")
    with util.Mount(bucket, os.path.join(tmpdir_short, "m2"), s3server.endpoint, opts) as m:
        assert getx(os.path.join(m.mnt, "k"), TTL) == "7200"
        assert getx(os.path.join(m.mnt, "k", "f"), TTL) == "30"
        assert getx(os.path.join(m.mnt, "k", "f"), "user.tierfs.ttl.effective") == "30 (from /k/f)"


@pytest.mark.parametrize("bad", [b"-5", b"abc", b"10x", b"", b"9" * 40, b"1.5", b" 5",
                                 b"5 m", b"Never", b"1\x002", b"100000000d"])
def test_bad_values_refused(s3, bucket, mount, bad):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount(bucket, expect_log=[r"refusing user.tierfs.ttl"])
    path = os.path.join(m.mnt, "f")
    os.setxattr(path, TTL, b"300")
    with pytest.raises(OSError) as e:
        os.setxattr(path, TTL, bad)
    assert e.value.errno == errno.EINVAL
    assert getx(path, TTL) == "300"        # unchanged


def test_attribute_names_and_flags(s3, bucket, mount):
    s3.put_object(Bucket=bucket, Key="f", Body=b"abc")
    m = mount(bucket)
    path = os.path.join(m.mnt, "f")
    for ro in ("user.tierfs.ttl.effective", "user.tierfs.tier", "user.tierfs.etag",
               "user.tierfs.expires"):
        with pytest.raises(OSError) as e:
            os.setxattr(path, ro, b"1")
        assert e.value.errno == errno.EPERM, ro
        with pytest.raises(OSError) as e:
            os.removexattr(path, ro)
        assert e.value.errno == errno.EPERM, ro
    with pytest.raises(OSError) as e:
        os.setxattr(path, "user.tierfs.nonsense", b"1")
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        os.setxattr(path, "user.other", b"1")
    assert e.value.errno == errno.ENOTSUP
    with pytest.raises(OSError) as e:
        os.removexattr(path, TTL)
    assert e.value.errno == errno.ENODATA
    with pytest.raises(OSError) as e:
        os.setxattr(path, TTL, b"5", os.XATTR_REPLACE)
    assert e.value.errno == errno.ENODATA
    os.setxattr(path, TTL, b"5", os.XATTR_CREATE)
    with pytest.raises(OSError) as e:
        os.setxattr(path, TTL, b"6", os.XATTR_CREATE)
    assert e.value.errno == errno.EEXIST
    os.setxattr(path, TTL, b"7\n", os.XATTR_REPLACE)      # setfattr's way, a trailing newline
    assert getx(path, TTL) == "7"
    assert getx(path, "user.tierfs.etag") == s3.head_object(Bucket=bucket, Key="f")["ETag"]
    # the command-line tools people use
    out = subprocess.run(["getfattr", "-d", "-m", "-", path], capture_output=True, text=True)
    assert "user.tierfs.ttl=\"7\"" in out.stdout and "user.tierfs.tier=" not in out.stdout
    out = subprocess.run(["getfattr", "-n", "user.tierfs.tier", path], capture_output=True,
                         text=True)
    assert "user.tierfs.tier=\"l1=" in out.stdout, out
    r = subprocess.run(["setfattr", "-n", TTL, "-v", "1h", path])
    assert r.returncode == 0 and getx(path, TTL) == "3600"
    r = subprocess.run(["setfattr", "-x", TTL, path])
    assert r.returncode == 0 and TTL not in os.listxattr(path)


def test_only_the_owner_sets_ttls(s3, bucket, mount):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount(bucket, ["allow_other"])
    os.chmod(os.path.dirname(m.mnt), 0o755)   # the test's temporary directory, for nobody
    path = os.path.join(m.mnt, "f")
    r = subprocess.run(["setfattr", "-n", TTL, "-v", "5", path], capture_output=True, text=True,
                       user=65534, group=65534)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert TTL not in os.listxattr(path)
    r = subprocess.run(["cat", path], capture_output=True, user=65534, group=65534)
    assert r.returncode == 0 and r.stdout == b"x"     # reading is for everyone


def test_ro_mount_is_read_only_in_the_kernel(s3, bucket, mount):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount(bucket, ["ro"])
    assert os.statvfs(m.mnt).f_flag & os.ST_RDONLY
    with pytest.raises(OSError) as e:
        os.setxattr(os.path.join(m.mnt, "f"), TTL, b"5")
    assert e.value.errno == errno.EROFS
    assert read(os.path.join(m.mnt, "f")) == b"x"


def test_promotion_and_demotion(s3, bucket, mount):
    """A chunk enters L1 at the promote_after-th access and leaves it demote_after later."""
    body = os.urandom(4 * 65536)
    s3.put_object(Bucket=bucket, Key="hot.bin", Body=body)
    m = mount(bucket, ["chunk_size=64K", "direct_io", "promote_after=3", "demote_after=2s",
                       "demote_interval=1s", "readahead=0"])
    path = os.path.join(m.mnt, "hot.bin")
    for n in (1, 2):
        assert read(path) == body
        t = tier(path)
        assert t["l1"] == "0" and t["size"] == str(len(body)), (n, t)
    assert read(path) == body                  # the third access
    util.wait_for(lambda: tier(path)["l2"] == str(len(body)), 10, "the L2 writer")
    t = tier(path)
    assert t["l1"] == str(len(body)) and t["l2"] == str(len(body)), t
    deadline = time.monotonic() + 10           # demote_after 2 s + a 1 s pass, waited out
    time.sleep(2)
    while tier(path)["l1"] != "0" and time.monotonic() < deadline:
        time.sleep(0.25)
    t = tier(path)
    assert t["l1"] == "0" and t["l2"] == str(len(body)), t   # L2 keeps it
    m.__exit__(None, None, None)
    st = stats_of(m.log())
    assert st["l1.promotions"] == 4 and st["l1.demotions"] == 4
