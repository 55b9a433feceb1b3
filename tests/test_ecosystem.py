"""tierfs as the system expects: mount -t fuse.tierfs, fstab lines, config files and their
precedence, the man page against --help, log files, and signals."""

import os
import re
import signal
import subprocess
import time

import pytest

import util

BUILD_BIN = os.path.dirname(util.tierfs_bin())


def env_with_tierfs(home):
    env = util.daemon_env(home)
    env["TIERFS_BIN"] = util.tierfs_bin()   # the helper runs the build under test
    return env


def daemon_gone(mnt):
    return subprocess.run(["pgrep", "-f", f"tierfs .*{re.escape(mnt)}"],
                          capture_output=True).returncode != 0


HELPER = "/sbin/mount.fuse.tierfs"


@pytest.fixture
def mount_helper():
    """The mount helper the build generated, in /sbin where mount(8) looks, pointing at the
    tierfs under test; removed afterwards (unless one was installed already)."""
    if os.geteuid() != 0:
        pytest.skip("mount(8) of a FUSE file system by type needs root")
    built = os.path.join(os.path.dirname(BUILD_BIN), "mount.fuse.tierfs")
    assert os.path.exists(built), built
    had = os.path.exists(HELPER)
    if not had:
        with open(built) as src, open(HELPER, "w") as dst:
            dst.write(src.read())
        os.chmod(HELPER, 0o755)
    yield
    if not had:
        os.unlink(HELPER)


@pytest.fixture
def cleanup_mounts():
    mounts = []
    yield mounts
    for m in mounts:
        util.unmount_if_mounted(m)
        subprocess.run(["pkill", "-f", f"tierfs .*{re.escape(m)}"])


def test_mount_t_fuse_tierfs(s3server, s3, bucket, tmpdir_short, mount_helper, cleanup_mounts):
    s3.put_object(Bucket=bucket, Key="dir/hello.txt", Body=b"via mount(8)\n")
    mnt = os.path.join(tmpdir_short, "m")
    os.makedirs(mnt)
    cleanup_mounts.append(mnt)
    env = env_with_tierfs(tmpdir_short)
    opts = f"endpoint={s3server.endpoint},ttl=5m,nosuid,nodev"
    for unmount in (["umount", mnt], ["fusermount3", "-u", mnt]):
        r = subprocess.run(["mount", "-t", "fuse.tierfs", bucket, mnt, "-o", opts], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(mnt)
        with open(os.path.join(mnt, "dir", "hello.txt"), "rb") as f:
            assert f.read() == b"via mount(8)\n"
        line = [l for l in open("/proc/mounts") if f" {mnt} " in l][0]
        assert "fuse.tierfs" in line and "nosuid" in line and "nodev" in line
        subprocess.run(unmount, check=True)
        util.wait_for(lambda: daemon_gone(mnt), 30, "the daemon to exit")
        assert not os.path.ismount(mnt)


def test_fstab_line(s3server, s3, bucket, tmpdir_short, mount_helper, cleanup_mounts):
    s3.put_object(Bucket=bucket, Key="data/2026/x.csv", Body=b"a,b\n")
    mnt = os.path.join(tmpdir_short, "data")
    os.makedirs(mnt)
    cleanup_mounts.append(mnt)
    fstab = os.path.join(tmpdir_short, "fstab")
    with open(fstab, "w") as f:
        f.write("# a temporary fstab\n")
        f.write(f"{bucket}:/data {mnt} fuse.tierfs defaults,_netdev,nofail,noauto,"
                f"endpoint={s3server.endpoint},ttl=5m,x-systemd.automount 0 0\n")
    r = subprocess.run(["mount", "-T", fstab, mnt], env=env_with_tierfs(tmpdir_short),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.listdir(mnt) == ["2026"]
    with open(os.path.join(mnt, "2026", "x.csv"), "rb") as f:
        assert f.read() == b"a,b\n"
    subprocess.run(["umount", mnt], check=True)
    util.wait_for(lambda: daemon_gone(mnt), 30, "the daemon to exit")


def test_config_file_and_precedence(s3server, s3, bucket, tmpdir_short):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    cfg = os.path.join(tmpdir_short, "t.conf")
    mnt = os.path.join(tmpdir_short, "m")
    with open(cfg, "w") as f:
        f.write(f"# tierfs config\nbucket = {bucket}\nmountpoint = {mnt}\n"
                f"endpoint = {s3server.endpoint}\nttl = 30\n\nchunk_size = 64K\n")
    # the environment names an endpoint where nothing listens: the file wins over it
    bad_env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{util.free_port()}"}
    for extra, want in (([], "30 (mount default)"), (["ttl=10"], "10 (mount default)")):
        m = util.Mount("", mnt, s3server.endpoint, [], env=bad_env)
        m.cmd = [util.tierfs_bin(), "-f", "-o", ",".join([f"config={cfg}"] + extra)]
        with m:
            assert os.getxattr(os.path.join(mnt, "f"), "user.tierfs.ttl.effective").decode() == want


def test_bad_config_line(tmpdir_short):
    cfg = os.path.join(tmpdir_short, "bad.conf")
    with open(cfg, "w") as f:
        f.write("# fine\nttl = 5m\nchunk_size = lots\n")
    r = util.run_tierfs(["-o", f"config={cfg}", "b", tmpdir_short],
                        {"PATH": os.environ["PATH"], "HOME": tmpdir_short}, tmpdir_short)
    assert r.returncode == 2
    assert f"{cfg}:3" in r.stderr and "chunk_size" in r.stderr
    with open(cfg, "w") as f:
        f.write("ttl 5m = x = y\n")
    r = util.run_tierfs(["-o", f"config={cfg}", "b", tmpdir_short],
                        {"PATH": os.environ["PATH"], "HOME": tmpdir_short}, tmpdir_short)
    assert r.returncode == 2 and f"{cfg}:1" in r.stderr
    r = util.run_tierfs(["-o", "config=/no/such/file", "b", tmpdir_short],
                        {"PATH": os.environ["PATH"], "HOME": tmpdir_short}, tmpdir_short)
    assert r.returncode == 2 and "cannot read config file" in r.stderr


def option_names(text, pattern):
    return {m.group(1) for m in re.finditer(pattern, text)}


def test_help_and_man_page_agree():
    help_ = subprocess.run([util.tierfs_bin(), "--help"], capture_output=True, text=True).stdout
    man = open(os.path.join(util.ROOT, "contrib", "tierfs.1")).read().replace("\\-", "-")
    pat_help = r"-o ([a-z0-9_]+)"
    pat_man = r"-o ([a-z0-9_]+)"
    in_help = option_names(help_, pat_help)
    in_man = option_names(man, pat_man)
    assert len(in_help) > 25
    assert in_help == in_man, (in_help ^ in_man)
    for flag in ("-f", "-d", "--help", "--version", "-V", "-h"):
        assert flag in help_ and flag in man, flag


def test_log_file_sighup_and_sigusr1(s3, bucket, tmpdir_short, s3server):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    log = os.path.join(tmpdir_short, "tierfs.log")
    m = util.Mount(bucket, os.path.join(tmpdir_short, "m"), s3server.endpoint,
                   [f"log_file={log}"])
    with m:
        open(os.path.join(m.mnt, "f")).read()
        assert "mounted bucket" in open(log).read()
        assert os.stat(log).st_mode & 0o777 == 0o600
        os.rename(log, log + ".1")                      # log rotation
        m.proc.send_signal(signal.SIGHUP)
        util.wait_for(lambda: os.path.exists(log), 10, "the log file to be reopened")
        m.proc.send_signal(signal.SIGUSR1)
        util.wait_for(lambda: "(SIGUSR1)" in open(log).read(), 10, "the stats line")
        assert os.path.ismount(m.mnt)                   # SIGHUP did not unmount
    text = open(log).read()
    assert "log file reopened" in text and "stats: s3 get=" in text
    assert "unmounting" in text and "mounted bucket" not in text


def test_log_level(s3, bucket, tmpdir_short, s3server):
    log = os.path.join(tmpdir_short, "w.log")
    m = util.Mount(bucket, os.path.join(tmpdir_short, "m"), s3server.endpoint,
                   [f"log_file={log}", "log_level=warning"])
    with m:
        os.listdir(m.mnt)
    assert "info:" not in open(log).read()
    r = util.run_tierfs(["-o", "log_level=chatty", "b", tmpdir_short],
                        {"PATH": os.environ["PATH"], "HOME": tmpdir_short}, tmpdir_short)
    assert r.returncode == 2 and "log_level" in r.stderr
