"""Credentials never appear in logs, statistics, error messages or /proc/mounts.  (The daemon
also marks itself non-dumpable, so that no core file carries them; that is not tested here:
as root, tests cannot tell a non-dumpable process from /proc.)"""

import os
import signal
import uuid

import util

SECRET = "SeCrEt" + uuid.uuid4().hex      # s3rver does not verify V4 signatures: any secret
TOKEN = "ToKeN" + uuid.uuid4().hex


def test_no_secrets_anywhere(s3server, s3, bucket, tmpdir_short):
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    log = os.path.join(tmpdir_short, "t.log")
    env = {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": TOKEN}
    m = util.Mount(bucket, os.path.join(tmpdir_short, "m"), s3server.endpoint,
                   ["log_level=debug", f"log_file={log}"], env=env,
                   expect_log=[r"ctl: refusing", r"s3: GET"])
    seen = []
    with m:
        open(os.path.join(m.mnt, "f")).read()
        try:
            open(os.path.join(m.mnt, "missing")).read()
        except OSError:
            pass
        try:
            with open(os.path.join(m.mnt, ".tierfs", "ctl"), "w") as f:
                f.write("bogus command\n")
        except OSError:
            pass
        m.proc.send_signal(signal.SIGUSR1)
        util.wait_for(lambda: "(SIGUSR1)" in open(log).read(), 10, "the stats line")
        for name in ("stats", "stats.json", "metrics"):
            seen.append(open(os.path.join(m.mnt, ".tierfs", name)).read())
        seen.append(open("/proc/mounts").read())
    seen.append(open(log).read())
    seen.append(m.log())
    # a failing mount's messages too: wrong access key, same secret
    r = util.run_tierfs(["-f", "-o", f"endpoint={s3server.endpoint},log_level=debug", bucket,
                         tmpdir_short],
                        util.daemon_env(tmpdir_short, {"AWS_ACCESS_KEY_ID": "WRONG", **env}),
                        tmpdir_short)
    assert r.returncode == 1
    seen += [r.stdout, r.stderr]
    for text in seen:
        assert SECRET not in text and TOKEN not in text

