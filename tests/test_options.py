"""The command line: --help, --version, bad options (exit 2), and clean exits."""

import os
import re
import signal
import subprocess

import pytest

import util


def run(args):
    """tierfs with bad arguments, in an empty environment: no credentials, so even a bug in
    the parser could not mount anything."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": "/nonexistent"}
    mnt = args[-1] if args and args[-1].startswith("/") else "/nonexistent"
    return util.run_tierfs(args, env, mnt, timeout=30)


MNT = util.scratch_dir("badopts-")   # never /tmp itself


def test_help_lists_every_option_with_default():
    r = run(["--help"])
    assert r.returncode == 0
    for opt in ("endpoint=", "region=", "profile=", "path_style", "ro", "ttl=", "chunk_size=",
                "cache_dir=", "allow_other", "timeout=", "retries=", "readahead=", "mem_cache=",
                "connections=", "anonymous", "direct_io", "ca_file=", "l2_size=", "l2_min_free=",
                "read_ahead_kb=", "prefetch=", "prefetch_window=", "prefetch_interval=",
                "prefetch_budget=", "-f", "-d", "--version"):
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
    (["bucket", MNT, "extra"], "unexpected argument"),
    (["-o", "ttl=abc", "b", MNT], "bad option ttl"),
    (["-o", "ttl=-5", "b", MNT], "bad option ttl"),
    (["-o", "ttl=10x", "b", MNT], "bad option ttl"),
    (["-o", "chunk_size=3", "b", MNT], "bad option chunk_size"),
    (["-o", "chunk_size=100K", "b", MNT], "bad option chunk_size"),
    (["-o", "chunk_size=128M", "b", MNT], "bad option chunk_size"),
    (["-o", "timeout=0", "b", MNT], "bad option timeout"),
    (["-o", "retries=many", "b", MNT], "bad option retries"),
    (["-o", "no_such_option", "b", MNT], "unknown option"),
    (["-o", "l2_size=lots", "b", MNT], "bad option l2_size"),
    (["-o", "l2_min_free=150%", "b", MNT], "bad option l2_min_free"),
    (["-o", "l2_min_free=x%", "b", MNT], "bad option l2_min_free"),
    (["-o", "read_ahead_kb=-1", "b", MNT], "bad option read_ahead_kb"),
    (["-o", "prefetch=maybe", "b", MNT], "bad option prefetch"),
    (["-o", "prefetch_window=0", "b", MNT], "bad option prefetch_window"),
    (["-o", "prefetch_interval=2h", "b", MNT], "bad option prefetch_interval"),
    (["-o", "prefetch_budget=much", "b", MNT], "bad option prefetch_budget"),
    (["--bogus", "b", MNT], "unknown option"),
    (["bad/bucket", MNT], "bad bucket name"),
    (["b:a//b", MNT], "bad prefix"),
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
        util.unmount_if_mounted(mnt)   # a daemon that died leaves its mount behind
    util.wait_for(lambda: subprocess.run(["pgrep", "-f", f"tierfs .*{mnt}"],
                                         capture_output=True).returncode != 0,
                  30, "the daemon to exit")


def test_daemonized_mount_that_fails(tmpdir_short, s3server):
    """In the background too, a mount that cannot be made says why on stderr and exits 1."""
    mnt = os.path.join(tmpdir_short, "bg")
    os.makedirs(mnt)
    env = util.daemon_env(tmpdir_short)
    r = subprocess.run([util.tierfs_bin(), "-o", f"endpoint={s3server.endpoint}",
                        "no-such-bucket-here", mnt], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1
    assert "does not exist" in r.stderr
    assert not util.in_mount_table(mnt)


def test_flag_options_leave_the_others_alone(s3, bucket, mount):
    """fuse_opt stores an int for a flag: it once overwrote the next field (direct_io zeroed
    the low byte of the TTL, so ttl=60 became 0)."""
    s3.put_object(Bucket=bucket, Key="d/x", Body=b"x")
    m = mount(bucket, ["direct_io", "path_style", "ttl=300"])
    eff = os.getxattr(os.path.join(m.mnt, "d", "x"), "user.tierfs.ttl.effective").decode()
    assert eff.startswith("300 "), eff
    m2 = mount(bucket, ["direct_io", "path_style"])
    eff = os.getxattr(os.path.join(m2.mnt, "d", "x"), "user.tierfs.ttl.effective").decode()
    assert eff.startswith("60 "), eff
