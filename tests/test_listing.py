"""Directories from S3 listings: pages, nesting, marker keys, prefixes, sizes and mtimes."""

import os
import stat

import util


def test_large_directory_pages(s3, bucket, mount):
    # 5,000 keys: five ListObjectsV2 pages of 1,000 (s3rver's page size, like S3's)
    items = {f"big/f{i:05d}.txt": f"{i}".encode() * (i % 7) for i in range(5000)}
    util.put_many(s3, bucket, items, workers=32)
    m = mount(bucket)
    names = os.listdir(os.path.join(m.mnt, "big"))
    assert len(names) == 5000
    assert sorted(names) == sorted(k.split("/")[1] for k in items)
    # ls -l: every size matches S3's
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="big/"):
        for o in page["Contents"]:
            listed[o["Key"]] = o
    with os.scandir(os.path.join(m.mnt, "big")) as it:
        for e in it:
            st = e.stat()
            o = listed["big/" + e.name]
            assert st.st_size == o["Size"]
            assert int(st.st_mtime) == int(o["LastModified"].timestamp())
            assert stat.S_ISREG(st.st_mode)


def test_nested_and_markers(s3, bucket, mount):
    util.put_many(s3, bucket, {
        "top.txt": b"top",
        "a/b/c/deep.txt": b"deep",
        "a/b/side.txt": b"side",
        "empty/": b"",            # a directory marker with nothing under it
        "marked/": b"",           # a marker beside real content
        "marked/x.txt": b"x",
    })
    m = mount(bucket)
    assert sorted(os.listdir(m.mnt)) == ["a", "empty", "marked", "top.txt"]
    assert os.listdir(os.path.join(m.mnt, "empty")) == []
    assert sorted(os.listdir(os.path.join(m.mnt, "marked"))) == ["x.txt"]
    assert sorted(os.listdir(os.path.join(m.mnt, "a", "b"))) == ["c", "side.txt"]
    assert stat.S_ISDIR(os.stat(os.path.join(m.mnt, "a", "b", "c")).st_mode)
    with open(os.path.join(m.mnt, "a/b/c/deep.txt"), "rb") as f:
        assert f.read() == b"deep"
    # the walk sees exactly the objects
    found = set()
    for d, _, files in os.walk(m.mnt):
        for f in files:
            found.add(os.path.relpath(os.path.join(d, f), m.mnt))
    assert found == {"top.txt", "a/b/c/deep.txt", "a/b/side.txt", "marked/x.txt"}


def test_lookup_without_listing(s3, bucket, mount):
    # stat a deep path cold, with no readdir first: lookups ask S3 name by name
    util.put_many(s3, bucket, {"p/q/r.txt": b"12345", "p/q/s/": b""})
    m = mount(bucket)
    st = os.stat(os.path.join(m.mnt, "p/q/r.txt"))
    assert st.st_size == 5 and stat.S_ISREG(st.st_mode)
    assert stat.S_ISDIR(os.stat(os.path.join(m.mnt, "p/q/s")).st_mode)


def test_prefix_as_root(s3, bucket, mount):
    util.put_many(s3, bucket, {
        "outside.txt": b"no",
        "data/2026/one.txt": b"one",
        "data/2026/two/three.txt": b"three",
        "database.txt": b"not under data/",
    })
    for spec in (f"{bucket}:data", f"{bucket}:/data/", f"{bucket}:data/2026"):
        m = mount(spec)
        if spec.endswith("2026"):
            assert sorted(os.listdir(m.mnt)) == ["one.txt", "two"]
        else:
            assert os.listdir(m.mnt) == ["2026"]
            with open(os.path.join(m.mnt, "2026/two/three.txt"), "rb") as f:
                assert f.read() == b"three"
        m.__exit__(None, None, None)


def test_empty_prefix_mount_warns(s3, bucket, mount):
    util.put_many(s3, bucket, {"x.txt": b"x"})
    m = mount(f"{bucket}:nothing-here", expect_log=[r"holds no keys"])
    assert os.listdir(m.mnt) == []
    assert "holds no keys" in m.log()


def test_statfs_and_readonly(s3, bucket, mount):
    """Data is read-only: every change is EROFS.  (The kernel mount itself is writable unless
    -o ro, so that TTL attributes can be set; see test_ttl.py.)"""
    util.put_many(s3, bucket, {"f.txt": b"data"})
    m = mount(bucket)
    sv = os.statvfs(m.mnt)
    assert sv.f_namemax == 255
    f = os.path.join(m.mnt, "f.txt")
    for call in (lambda: open(f, "wb"),
                 lambda: open(f, "ab"),
                 lambda: open(f, "r+b"),
                 lambda: open(os.path.join(m.mnt, "new.txt"), "wb"),
                 lambda: os.mkdir(os.path.join(m.mnt, "d")),
                 lambda: os.rmdir(m.mnt + "/nonexistent-dir"),
                 lambda: os.unlink(f),
                 lambda: os.rename(f, os.path.join(m.mnt, "g.txt")),
                 lambda: os.symlink("f.txt", os.path.join(m.mnt, "l")),
                 lambda: os.link(f, os.path.join(m.mnt, "h")),
                 lambda: os.chmod(f, 0o600),
                 lambda: os.truncate(f, 0),
                 lambda: os.utime(f, (1, 1)),
                 lambda: os.mknod(os.path.join(m.mnt, "fifo"), 0o600 | 0o010000)):
        try:
            call()
            raise AssertionError("a write succeeded on a read-only mount")
        except OSError as e:
            assert e.errno in (30, 2), e   # EROFS (ENOENT for the missing directory)
