"""Failures: missing keys, S3 going away under a mount, wrong credentials, bad endpoints."""

import errno
import os
import time

import pytest

import util


def test_missing_key_is_enoent(s3, bucket, mount):
    util.put_many(s3, bucket, {"present.txt": b"here"})
    m = mount(bucket)
    with pytest.raises(FileNotFoundError):
        open(os.path.join(m.mnt, "absent.txt"), "rb")
    with pytest.raises(FileNotFoundError):
        os.listdir(os.path.join(m.mnt, "no-such-dir"))


def test_object_deleted_after_listing(s3, bucket, mount):
    # ttl=1: once the listing is stale, a deleted object is gone from the mount
    util.put_many(s3, bucket, {"gone.txt": b"soon gone", "stays.txt": b"stays"})
    m = mount(bucket, ["ttl=1"])
    assert sorted(os.listdir(m.mnt)) == ["gone.txt", "stays.txt"]
    s3.delete_object(Bucket=bucket, Key="gone.txt")
    time.sleep(1.5)
    assert os.listdir(m.mnt) == ["stays.txt"]
    with pytest.raises(FileNotFoundError):
        os.stat(os.path.join(m.mnt, "gone.txt"))


def test_s3_stopped_mid_mount(tmpdir_short):
    """Uncached reads and listings fail with EIO within the deadline, and never hang."""
    srv = util.S3Server().start()
    try:
        s3 = util.s3_client(srv.endpoint)
        s3.create_bucket(Bucket="down")
        util.put_many(s3, "down", {"a.bin": os.urandom(300000), "d/b.txt": b"b"})
        timeout_ms = 3000
        m = util.Mount("down", os.path.join(tmpdir_short, "m"), srv.endpoint,
                       [f"timeout={timeout_ms}", "ttl=0"],
                       expect_log=[r"failed after retries", r"s3: .* failed"])
        with m:
            assert sorted(os.listdir(m.mnt)) == ["a.bin", "d"]
            srv.stop()
            for op in (lambda: open(os.path.join(m.mnt, "a.bin"), "rb").read(),
                       lambda: os.listdir(os.path.join(m.mnt, "d")),
                       lambda: os.stat(os.path.join(m.mnt, "new-name"))):
                t0 = time.monotonic()
                with pytest.raises(OSError) as e:
                    op()
                took = time.monotonic() - t0
                assert e.value.errno == errno.EIO
                # one deadline per S3 operation; a FUSE op makes at most two in sequence
                assert took < 2 * timeout_ms / 1000 + 2, f"took {took:.1f}s"
            # S3 back on the same port: the same mount works again, no remount
            srv.start()
            with open(os.path.join(m.mnt, "d", "b.txt"), "rb") as f:
                assert f.read() == b"b"
    finally:
        srv.cleanup()


def run_tierfs(args, env_extra=None, timeout=60):
    home = util.scratch_dir("home-")
    return util.run_tierfs(args, util.daemon_env(home, env_extra), args[-1], timeout)


def test_wrong_credentials(s3server, bucket, tmp_path):
    r = run_tierfs(["-f", "-o", f"endpoint={s3server.endpoint}", bucket, str(tmp_path)],
                   {"AWS_ACCESS_KEY_ID": "NOT-A-KEY", "AWS_SECRET_ACCESS_KEY": "nope-secret"})
    assert r.returncode == 1
    assert "access to bucket" in r.stderr and "denied" in r.stderr
    assert "InvalidAccessKeyId" in r.stderr
    assert "nope-secret" not in r.stderr   # secrets never appear in messages
    assert not os.path.ismount(tmp_path)


def test_no_credentials(s3server, bucket, tmp_path):
    home = util.scratch_dir("home-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = home
    r = util.run_tierfs(["-f", "-o", f"endpoint={s3server.endpoint}", bucket, str(tmp_path)], env,
                        str(tmp_path))
    assert r.returncode == 1
    assert "no credentials" in r.stderr


def test_missing_bucket(s3server, tmp_path):
    r = run_tierfs(["-f", "-o", f"endpoint={s3server.endpoint}", "no-such-bucket", str(tmp_path)])
    assert r.returncode == 1
    assert "does not exist" in r.stderr


def test_unreachable_endpoint(tmp_path):
    port = util.free_port()   # nothing listens there
    t0 = time.monotonic()
    r = run_tierfs(["-f", "-o", f"endpoint=http://127.0.0.1:{port},timeout=2000", "b",
                    str(tmp_path)])
    assert r.returncode == 1
    assert "cannot list bucket" in r.stderr
    assert time.monotonic() - t0 < 10


def test_profile_credentials(s3server, bucket, tmp_path):
    """~/.aws/credentials with a named profile, chosen by -o profile= (and by AWS_PROFILE)."""
    home = util.scratch_dir("home-")
    os.makedirs(os.path.join(home, ".aws"))
    with open(os.path.join(home, ".aws", "credentials"), "w") as f:
        f.write("[default]\naws_access_key_id = WRONG\naws_secret_access_key = WRONG\n\n"
                f"[test]\naws_access_key_id = {util.ACCESS_KEY}\n"
                f"aws_secret_access_key = {util.SECRET_KEY}\n")
    s3 = util.s3_client(s3server.endpoint)
    s3.put_object(Bucket=bucket, Key="p.txt", Body=b"profile")
    for opts, extra in ((["profile=test"], {}), ([], {"AWS_PROFILE": "test"})):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(extra)
        mnt = util.scratch_dir("p-")
        m = util.Mount(bucket, mnt, s3server.endpoint, opts, home=home)
        m.env = dict(env, HOME=home)
        with m:
            with open(os.path.join(mnt, "p.txt"), "rb") as f:
                assert f.read() == b"profile"
        os.rmdir(mnt)
