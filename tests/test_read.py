"""Reads through the chunked read path: whole files, ranges, chunk boundaries, EOF, empty files,
and concurrent readers, all checked against what was uploaded."""

import hashlib
import os
import random
import threading

import pytest

import util

CHUNK = 64 * 1024   # mounts below use chunk_size=64K to get many chunk boundaries cheaply


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture
def data_bucket(s3, bucket):
    rnd = random.Random(42)
    sizes = [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 517, 2 * 1024 * 1024 + 3]
    files = {f"s{n}.bin": rnd.randbytes(n) for n in sizes}
    util.put_many(s3, bucket, files)
    return bucket, files


@pytest.mark.parametrize("chunk", ["64K", "1M"])
def test_whole_files(data_bucket, mount, chunk):
    bucket, files = data_bucket
    m = mount(bucket, [f"chunk_size={chunk}"])
    for name, body in files.items():
        with open(os.path.join(m.mnt, name), "rb") as f:
            got = f.read()
        assert len(got) == len(body), name
        assert sha(got) == sha(body), name


def test_ranges_and_eof(data_bucket, mount):
    bucket, files = data_bucket
    m = mount(bucket, ["chunk_size=64K"])
    rnd = random.Random(7)
    for name, body in files.items():
        fd = os.open(os.path.join(m.mnt, name), os.O_RDONLY)
        try:
            n = len(body)
            probes = [(0, 10), (n, 10), (n + 100, 10), (max(n - 3, 0), 10)]
            for k in range(1, 4):   # across each of the first chunk boundaries
                probes.append((max(k * CHUNK - 5, 0), 10))
            probes += [(rnd.randrange(0, n + 1), rnd.randrange(1, 300000)) for _ in range(20)]
            for off, ln in probes:
                assert os.pread(fd, ln, off) == body[off:off + ln], (name, off, ln)
        finally:
            os.close(fd)


def test_direct_io_ranges(data_bucket, mount):
    # with direct_io every read reaches the daemon with the caller's offset and size
    bucket, files = data_bucket
    m = mount(bucket, ["chunk_size=64K", "direct_io"])
    body = files[f"s{3 * CHUNK + 517}.bin"]
    fd = os.open(os.path.join(m.mnt, f"s{3 * CHUNK + 517}.bin"), os.O_RDONLY)
    try:
        for off in range(0, len(body) + CHUNK, 12345):
            assert os.pread(fd, 70000, off) == body[off:off + 70000]
    finally:
        os.close(fd)


def test_concurrent_readers(data_bucket, mount):
    bucket, files = data_bucket
    m = mount(bucket, ["chunk_size=64K"])
    name = f"s{2 * 1024 * 1024 + 3}.bin"
    want = sha(files[name])
    errors = []

    def reader(i):
        try:
            with open(os.path.join(m.mnt, name), "rb") as f:
                if i % 2:
                    got = f.read()
                else:   # interleaved ranged reads
                    parts, off = [], 0
                    while True:
                        b = os.pread(f.fileno(), 100000 + i, off)
                        if not b:
                            break
                        parts.append(b)
                        off += len(b)
                    got = b"".join(parts)
            if sha(got) != want:
                errors.append(f"reader {i}: wrong bytes")
        except Exception as e:   # noqa: BLE001 - report every failure
            errors.append(f"reader {i}: {e!r}")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors


def test_copy_tree(s3, bucket, mount, tmp_path):
    rnd = random.Random(3)
    files = {f"d{i % 3}/f{i}.bin": rnd.randbytes(rnd.randrange(0, 200000)) for i in range(30)}
    util.put_many(s3, bucket, files)
    m = mount(bucket)
    import shutil
    shutil.copytree(m.mnt, tmp_path / "copy")
    for k, body in files.items():
        assert (tmp_path / "copy" / k).read_bytes() == body
