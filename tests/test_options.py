"""The command line: --help, --version, bad options (exit 2), and clean exits."""

import os
import re
import signal
import subprocess

import pytest

import util


def run(args):
    return subprocess.run([util.tierfs_bin()] + args, capture_output=True, text=True, timeout=30)


def test_help_lists_every_option_with_default():
    r = run(["--help"])
    assert r.returncode == 0
    for opt in ("endpoint=", "region=", "profile=", "path_style", "ro", "ttl=", "chunk_size=",
                "cache_dir=", "allow_other", "timeout=", "retries=", "readahead=", "mem_cache=",
                "fetch_threads=", "anonymous", "direct_io", "-f", "-d", "--version"):
        assert re.search(r"(-o |\s)" + re.escape(opt), r.stdout), opt
    # every -o line that takes a value names its default
    for line in r.stdout.splitlines():
        m = re.match(r"\s+-o (\w+)=", line)
        if m and m.group(1) not in ("cache_dir", "endpoint", "profile", "region"):
            block = r.stdout[r.stdout.index(line):].split("\n    -o")[0]
            assert "default" in block, line
    assert run(["-h"]).stdout == r.stdout


def test_version():
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.startswith("tierfs ")


@pytest.mark.parametrize("args,msg", [
    ([], "usage"),
    (["bucket"], "usage"),
    (["bucket", "/", "extra"], "unexpected argument"),
    (["-o", "ttl=abc", "b", "/tmp"], "bad option ttl"),
    (["-o", "ttl=-5", "b", "/tmp"], "bad option ttl"),
    (["-o", "ttl=10x", "b", "/tmp"], "bad option ttl"),
    (["-o", "chunk_size=3", "b", "/tmp"], "bad option chunk_size"),
    (["-o", "chunk_size=100K", "b", "/tmp"], "bad option chunk_size"),
    (["-o", "chunk_size=128M", "b", "/tmp"], "bad option chunk_size"),
    (["-o", "timeout=0", "b", "/tmp"], "bad option timeout"),
    (["-o", "retries=many", "b", "/tmp"], "bad option retries"),
    (["-o", "no_such_option", "b", "/tmp"], "unknown option"),
    (["-o", "rw", "b", "/tmp"], "read-only"),
    (["--bogus", "b", "/tmp"], "unknown option"),
    (["bad/bucket", "/tmp"], "bad bucket name"),
    (["b:a//b", "/tmp"], "bad prefix"),
    (["b", "/no/such/dir"], "not a directory"),
])
def test_bad_options_exit_2(args, msg):
    r = run(args)
    assert r.returncode == 2, (args, r.stderr)
    assert msg in r.stderr, (args, r.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_unmounts_cleanly(s3, bucket, tmpdir_short, s3server, sig):
    s3.put_object(Bucket=bucket, Key="f", Body=b"f")
    m = util.Mount(bucket, os.path.join(tmpdir_short, "m"), s3server.endpoint).start()
    try:
        assert os.listdir(m.mnt) == ["f"]
        m.proc.send_signal(sig)
        assert m.proc.wait(30) == 0
        assert not os.path.ismount(m.mnt)
    finally:
        m.kill()


def test_daemonized_mount(s3, bucket, tmpdir_short, s3server):
    """Without -f tierfs forks into the background once mounted, and exits when unmounted."""
    s3.put_object(Bucket=bucket, Key="bg.txt", Body=b"background")
    mnt = os.path.join(tmpdir_short, "bg")
    os.makedirs(mnt)
    env = util.daemon_env(tmpdir_short)
    r = subprocess.run([util.tierfs_bin(), "-o", f"endpoint={s3server.endpoint}", bucket, mnt],
                       env=env, capture_output=True, text=True, timeout=60)
    try:
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)
        with open(os.path.join(mnt, "bg.txt"), "rb") as f:
            assert f.read() == b"background"
    finally:
        subprocess.run(["fusermount3", "-u", mnt])
    util.wait_for(lambda: subprocess.run(["pgrep", "-f", f"tierfs .*{mnt}"],
                                         capture_output=True).returncode != 0,
                  30, "the daemon to exit")
