"""Object keys that are awkward as URLs or file names, read through the mount.

s3rver cannot store keys with empty, "." or ".." components, nor components over ~230 bytes;
those naming rules are covered by unit_policy.c on crafted listings."""

import errno
import os

import pytest

import util

ODD = {
    "with space.txt": b"space",
    "plus+sign.txt": b"plus",
    "percent%41%20.txt": b"percent",
    "question?mark.txt": b"question",
    "hash#tag.txt": b"hash",
    "amp&eq=semi;.txt": b"amp",
    "tilde~star*.txt": b"tilde",
    "quote'dq\".txt": b"quotes",
    "brackets[1](2){3}.txt": b"brackets",
    "unicodé/ファイル 名.txt": "unicode".encode(),
    "emoji-😀.txt": b"emoji",
    "tab\there.txt": b"tab",
    "dir with space/inner+plus.txt": b"inner",
    "n" * 200: b"long name",
    "/".join(["k" * 200] * 4) + "/end.txt": b"long key, 809 bytes",
}


def test_odd_keys_read_back(s3, bucket, mount):
    util.put_many(s3, bucket, ODD)
    m = mount(bucket)
    for key, body in ODD.items():
        path = os.path.join(m.mnt, key)
        assert os.path.isfile(path), key
        assert os.path.getsize(path) == len(body), key
        with open(path, "rb") as f:
            assert f.read() == body, key
    assert "ファイル 名.txt" in os.listdir(os.path.join(m.mnt, "unicodé"))


def test_file_beside_directory(s3, bucket, mount):
    # a key "a" beside keys "a/...": the directory wins and the object is hidden, with a warning
    util.put_many(s3, bucket, {"a": b"the file", "a/b": b"inside", "z": b"z"})
    m = mount(bucket, expect_log=[r"hiding object 'a'"])
    assert sorted(os.listdir(m.mnt)) == ["a", "z"]
    assert os.path.isdir(os.path.join(m.mnt, "a"))
    with open(os.path.join(m.mnt, "a", "b"), "rb") as f:
        assert f.read() == b"inside"
    assert "hiding object 'a'" in m.log()


def test_file_beside_directory_cold_lookup(s3, bucket, mount):
    # the same rule when the name is looked up without a listing
    util.put_many(s3, bucket, {"a": b"the file", "a/b": b"inside"})
    m = mount(bucket)
    assert os.path.isdir(os.path.join(m.mnt, "a"))


def test_names_that_are_not_there(s3, bucket, mount):
    util.put_many(s3, bucket, {"x.txt": b"x"})
    m = mount(bucket)
    for name in ("missing.txt", "x.txt/below", "X.TXT", "x.tx"):
        with pytest.raises(OSError) as e:
            os.stat(os.path.join(m.mnt, name))
        assert e.value.errno in (errno.ENOENT, errno.ENOTDIR), name
    with pytest.raises(OSError) as e:
        os.stat(os.path.join(m.mnt, "n" * 256))
    assert e.value.errno == errno.ENAMETOOLONG


@pytest.mark.s3rver_only("s3rver writes a control character into its listing as invalid XML; "
                         "RGW encodes the key (encoding-type=url), so the listing is fine")
def test_unlistable_directory_fails_cleanly(s3, bucket, mount):
    # s3rver writes a key with a control character into its listing as invalid XML (real S3
    # escapes it with encoding-type=url).  That directory fails with EIO, the rest works, and
    # the daemon stays up.
    util.put_many(s3, bucket, {"ctl/bad\x01key": b"x", "ok/fine.txt": b"fine"})
    m = mount(bucket, expect_log=[r"malformed ListObjectsV2"])
    with pytest.raises(OSError) as e:
        os.listdir(os.path.join(m.mnt, "ctl"))
    assert e.value.errno == errno.EIO
    with open(os.path.join(m.mnt, "ok", "fine.txt"), "rb") as f:
        assert f.read() == b"fine"
