"""Helpers for the tierfs integration tests: a real s3rver on loopback, tierfs mounts that are
always cleaned up, and log scanning.  Modelled on libfuse's former test/util.py."""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S3RVER = os.path.join(ROOT, "node_modules", ".bin", "s3rver")
ACCESS_KEY = "S3RVER"   # s3rver's built-in account
SECRET_KEY = "S3RVER"
REGION = "us-east-1"

# Daemon homes (and their on-disk caches) and other scratch directories live under one
# directory per test process, removed when it exits: a run leaves nothing in /tmp.
_SCRATCH = None


def scratch_dir(prefix):
    """A new directory under this process's scratch directory (removed at exit)."""
    global _SCRATCH
    if _SCRATCH is None:
        _SCRATCH = tempfile.mkdtemp(prefix="tierfs-tests-")
        atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)
    return tempfile.mkdtemp(prefix=prefix, dir=_SCRATCH)


def tierfs_bin():
    """The daemon under test: $TIERFS_BIN, else the default build directory's."""
    path = os.environ.get("TIERFS_BIN") or os.path.join(ROOT, "build", "fs", "tierfs")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"tierfs binary not found at {path}: build first (contrib/test.sh)")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair():
    """A port p with p + 1 free too (RGW's monitor listens on the port after radosgw's)."""
    while True:
        p = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue


def wait_for(cond, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


class S3Server:
    """One s3rver process on 127.0.0.1 with its own data directory."""

    kind = "s3rver"

    def __init__(self, datadir=None, port=None, tls=None):
        """tls: (keyfile, certfile) to serve https instead of http."""
        self.tls = tls
        self.own_dir = datadir is None
        self.datadir = datadir or tempfile.mkdtemp(prefix="tierfs-s3rver-")
        self.port = port or free_port()
        self.proc = None
        self.log = os.path.join(self.datadir + ".log")

    @property
    def endpoint(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self):
        if not os.access(S3RVER, os.X_OK):
            raise RuntimeError("s3rver missing: run 'npm ci' in the repository (contrib/test.sh does)")
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            # --service-endpoint localhost: BUCKET.s3.localhost is a virtual-host request
            [S3RVER, "-d", self.datadir, "-a", "127.0.0.1", "-p", str(self.port), "-s",
             "--service-endpoint", "localhost"]
            + (["--key", self.tls[0], "--cert", self.tls[1]] if self.tls else []),
            stdout=self.logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"s3rver exited with {self.proc.returncode}; see {self.log}")
            try:
                import ssl
                ctx = ssl.create_default_context(cafile=self.tls[1]) if self.tls else None
                urllib.request.urlopen(self.endpoint + "/", timeout=1, context=ctx).read()
                return True
            except urllib.error.HTTPError:
                return True   # it answers
            except OSError:
                return False
        wait_for(up, 30, "s3rver to listen")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.datadir, ignore_errors=True)
            try:
                os.unlink(self.log)
            except OSError:
                pass


RGW_SCRIPT = os.path.join(ROOT, "contrib", "rgw.sh")


class RgwServer:
    """A Ceph RADOS Gateway on 127.0.0.1 with its own cluster directory (contrib/rgw.sh: one
    monitor, one memstore OSD, radosgw), the same interface as S3Server.  Its S3 user has
    s3rver's keys, so the tests' credentials work on both.  A cold start takes about 15 s; a
    stop keeps the data, and start() after stop() brings it back."""

    kind = "rgw"

    def __init__(self, datadir=None, port=None):
        if not shutil.which("radosgw"):
            raise RuntimeError("radosgw is not installed: run 'contrib/rgw.sh install'")
        self.own_dir = datadir is None
        self.datadir = datadir or tempfile.mkdtemp(prefix="tierfs-rgw-")
        conf = os.path.join(self.datadir, "ceph.conf")
        if port is None and os.path.exists(conf):   # a cluster made before: its own port
            with open(conf) as f:
                m = re.search(r"beast endpoint=127\.0\.0\.1:(\d+)", f.read())
            port = int(m.group(1)) if m else None
        self.port = port or free_port_pair()
        self.tls = None
        self.running = False
        self.log = os.path.join(self.datadir, "log", "client.rgw.log")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        fresh = not os.path.exists(os.path.join(self.datadir, "ceph.conf"))
        cmd = ([RGW_SCRIPT, "start", self.datadir, str(self.port)] if fresh
               else [RGW_SCRIPT, "restart", self.datadir])
        self.running = True   # from here on, whatever did start is stopped by stop()
        wait = int(os.environ.get("RGW_WAIT", "120"))   # rgw.sh's wait for the frontend
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120 + wait)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        return self

    def stop(self):
        """Stops the daemons of this cluster directory (by their pid files), even those of a
        start that was interrupted."""
        if self.running or os.path.isdir(os.path.join(self.datadir, "run")):
            wait = int(os.environ.get("RGW_STOP_WAIT", "30"))   # rgw.sh's, per daemon
            subprocess.run([RGW_SCRIPT, "stop", self.datadir], capture_output=True,
                           timeout=60 + 3 * wait)
            self.running = False

    def cleanup(self):
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.datadir, ignore_errors=True)


def s3_server_kind():
    """Which S3 server the tests run against: $TIERFS_S3_SERVER, s3rver (default) or rgw."""
    kind = os.environ.get("TIERFS_S3_SERVER", "s3rver")
    if kind not in ("s3rver", "rgw"):
        raise RuntimeError(f"TIERFS_S3_SERVER={kind}: s3rver or rgw")
    return kind


def new_server():
    """A server of the kind the run asks for (not started)."""
    return RgwServer() if s3_server_kind() == "rgw" else S3Server()


def in_mount_table(mnt):
    """Whether mnt is a mount point in the kernel's table, dead ones included (os.path.ismount
    says False for a FUSE mount whose daemon died: its stat fails with ENOTCONN)."""
    real = os.path.realpath(mnt)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def unmount_if_mounted(mnt):
    """Lazily unmounts mnt if anything, alive or dead, is mounted there."""
    if in_mount_table(mnt):
        subprocess.run(["fusermount3", "-u", "-z", mnt], stderr=subprocess.DEVNULL)


def run_tierfs(args, env, mountpoint, timeout=60):
    """Runs tierfs to completion (for runs expected to fail before mounting).  Whatever
    happens, nothing stays mounted at mountpoint and the process is gone."""
    p = subprocess.Popen([tierfs_bin()] + args, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += f"\n[killed after {timeout}s]"
    finally:
        unmount_if_mounted(mountpoint)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def abort_fuse_connection(mnt):
    """Aborts the FUSE connection of mnt (fusectl), the last resort for a daemon that was
    killed while one of its threads was blocked in the kernel on that connection."""
    dev = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == os.path.realpath(mnt) and " - fuse" in line:
                dev = parts[2].split(":")[1]
    conns = "/sys/fs/fuse/connections"
    if not os.listdir(conns) if os.path.isdir(conns) else True:
        subprocess.run(["mount", "-t", "fusectl", "none", conns], stderr=subprocess.DEVNULL)
    if dev and os.path.exists(f"{conns}/{dev}/abort"):
        with open(f"{conns}/{dev}/abort", "w") as f:
            f.write("1")


def reap(proc, mnt, timeout=10):
    """Waits for a killed daemon; aborts its connection if it cannot finish dying."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        abort_fuse_connection(mnt)
        proc.wait(30)


def s3_client(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, region_name=REGION,
                        config=Config(retries={"max_attempts": 3}, max_pool_connections=32))


def put_many(s3, bucket, items, workers=16):
    """Uploads {key: bytes} in parallel."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items.items()))


def daemon_env(home, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # the default cache directory lands under the test's own home
    env.update(HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"),
               AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    env.update(extra or {})
    return env


BAD_LOG = re.compile(r"\b(error|warning|fatal|crash|abort|AddressSanitizer|runtime error|LeakSanitizer)\b",
                     re.IGNORECASE)


class Mount:
    """A tierfs mount in the foreground, its log in a file.  Use as a context manager (or through
    the `mount` fixture): on success it unmounts with fusermount3 -u and requires exit status 0
    and a log without unexpected warnings; on failure it unmounts lazily and kills the daemon."""

    def __init__(self, spec, mnt, endpoint, options=(), env=None, home=None, expect_log=None,
                 wait=True):
        self.spec, self.mnt, self.endpoint = spec, mnt, endpoint
        self.home = home or scratch_dir("home-")
        self.logpath = mnt.rstrip("/") + ".log"
        self.expect_log = [re.compile(p) for p in (expect_log or [])]
        opts = ["endpoint=" + endpoint] + list(options)
        self.cmd = [tierfs_bin(), "-f", "-o", ",".join(opts), spec, mnt]
        self.env = daemon_env(self.home, env)
        self.wait = wait
        self.proc = None

    def start(self):
        os.makedirs(self.mnt, exist_ok=True)
        self.logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                     env=self.env)
        if self.wait:
            def mounted():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"tierfs exited with {self.proc.returncode} before mounting:\n"
                                       + self.log())
                return os.path.ismount(self.mnt)
            wait_for(mounted, 30, "the mount")
        return self

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def unexpected_log_lines(self):
        bad = []
        for line in self.log().splitlines():
            if BAD_LOG.search(line) and not any(p.search(line) for p in self.expect_log):
                bad.append(line)
        return bad

    def umount(self):
        """Strict unmount: fusermount3 -u, the daemon must exit 0 by itself."""
        subprocess.run(["fusermount3", "-u", self.mnt], check=True)
        rc = self.proc.wait(30)
        self.logf.close()
        return rc

    def kill(self):
        subprocess.run(["fusermount3", "-u", "-z", self.mnt], stderr=subprocess.DEVNULL)
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            reap(self.proc, self.mnt)
        if not self.logf.closed:
            self.logf.close()

    def reproducer(self):
        env = " ".join(f"{k}={v}" for k, v in self.env.items() if k.startswith("AWS_") or k == "HOME")
        return f"{env} {' '.join(self.cmd)}"

    def __enter__(self):
        return self.start()

    def __exit__(self, et, ev, tb):
        if et is not None or self.proc.poll() is not None:
            self.kill()
            if et is None:
                raise AssertionError(f"tierfs died (status {self.proc.returncode}):\n{self.log()}")
            print(f"tierfs log:\n{self.log()}\nreproduce with: {self.reproducer()}")
            return False
        try:
            rc = self.umount()
        except Exception:
            self.kill()
            raise
        assert rc == 0, f"tierfs exited with {rc} after unmount:\n{self.log()}"
        bad = self.unexpected_log_lines()
        assert not bad, "unexpected lines in the tierfs log:\n" + "\n".join(bad)
        return False


def tierfs_stats(mnt):
    """MOUNT/.tierfs/stats.json, parsed."""
    import json
    with open(os.path.join(mnt, ".tierfs", "stats.json")) as f:
        return json.load(f)


def tierfs_ctl(mnt, line):
    """Writes one command to MOUNT/.tierfs/ctl."""
    with open(os.path.join(mnt, ".tierfs", "ctl"), "w") as f:
        f.write(line + "\n")


class LoopbackServer:
    """Start, stop and endpoint of a socketserver on 127.0.0.1 served by a daemon thread (the
    test proxies).  A subclass builds its server and hands it to serve_on()."""

    def serve_on(self, server):
        server.daemon_threads = True
        self.server = server
        self.port = server.server_address[1]
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
