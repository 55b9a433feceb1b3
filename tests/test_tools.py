"""tierfs as the tools people run see it (issue 17): cp -a, rsync -aX, tar --xattrs and
--listed-incremental, git status, executables, tail -F, df, vim, ls -l.  Each test reproduces
what a tool once saw wrong, with the tool itself."""

import errno
import mmap
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import util

TTL = "user.tierfs.ttl"
DIR_MTIME = 946684800            # 2000-01-01T00:00:00Z, bucket.c
S3FS_EXEC = str(0o100755)        # s3fs writes x-amz-meta-mode as a decimal st_mode


@pytest.fixture
def local():
    """A directory on a local file system with user xattrs (not tmpfs), removed after."""
    d = tempfile.mkdtemp(prefix="tfs-local-", dir="/var/tmp")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    return r


def xattrs_of_tree(root):
    names = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            names.update(os.listxattr(os.path.join(d, n), follow_symlinks=False))
    return names


def test_copies_carry_no_internal_attributes(s3, bucket, mount, local):
    """1. cp -a, rsync -aX and tar --xattrs copy only what a user set (user.tierfs.ttl); a
    periodic rsync -aX settles (the cache's own attributes, such as expires, change)."""
    util.put_many(s3, bucket, {"d/a.txt": b"a", "d/b.txt": b"b", "top.txt": b"t"})
    m = mount(bucket, ["ttl=1"])
    os.setxattr(os.path.join(m.mnt, "d", "a.txt"), TTL, b"1h")
    src = m.mnt + "/"
    cp = os.path.join(local, "cp")
    r = run(["cp", "-a", src, cp])
    assert r.returncode == 0, r.stderr
    assert xattrs_of_tree(cp) == {TTL}
    assert os.getxattr(os.path.join(cp, "d", "a.txt"), TTL) == b"3600"
    rs = os.path.join(local, "rs")
    r = run(["rsync", "-aX", src, rs + "/"])
    assert r.returncode == 0, r.stderr
    assert xattrs_of_tree(rs) == {TTL}
    time.sleep(1.5)              # every expires value has moved on
    r = run(["rsync", "-aXi", src, rs + "/"])
    assert r.returncode == 0 and r.stdout == "", r.stdout
    tarball = os.path.join(local, "x.tar")
    r = run(["tar", "--xattrs", "--xattrs-include=*", "-cf", tarball, "-C", m.mnt, "."])
    assert r.returncode == 0, r.stderr
    r = run(["tar", "--xattrs", "-tvvf", tarball])
    assert "tierfs.tier" not in r.stdout and "tierfs.expires" not in r.stdout
    # still readable by name, and getfattr -d shows what was set
    f = os.path.join(m.mnt, "top.txt")
    assert os.getxattr(f, "user.tierfs.expires")
    r = run(["getfattr", "-d", "-m", "-", os.path.join(m.mnt, "d", "a.txt")])
    assert 'user.tierfs.ttl="3600"' in r.stdout and "expires" not in r.stdout


def test_ls_asks_security_and_acl_names_once(s3, bucket, mount):
    """11. ls -l asked two extended attributes per entry (security.selinux, the POSIX ACL):
    tierfs answers ENOTSUP for namespaces it does not have, which ls remembers per device."""
    n = 500
    util.put_many(s3, bucket, {f"big/f{i:05d}": b"x" for i in range(n)})
    m = mount(bucket)
    d = os.path.join(m.mnt, "big")
    assert len(os.listdir(d)) == n
    with pytest.raises(OSError) as e:
        os.getxattr(os.path.join(d, "f00000"), "security.selinux")
    assert e.value.errno == errno.ENOTSUP
    with pytest.raises(OSError) as e:
        os.getxattr(os.path.join(d, "f00000"), "system.posix_acl_access")
    assert e.value.errno == errno.ENOTSUP
    with pytest.raises(OSError) as e:
        os.getxattr(os.path.join(d, "f00000"), "user.someone.else")
    assert e.value.errno == errno.ENODATA
    trace = os.path.join(m.mnt + "-trace")
    r = run(["strace", "-f", "-c", "-o", trace, "-e", "trace=getxattr,lgetxattr,fgetxattr,listxattr,llistxattr,flistxattr", "ls", "-l", d])
    assert r.returncode == 0 and len(r.stdout.splitlines()) == n + 1, r.stderr
    summary = open(trace).read()
    os.unlink(trace)
    # "% time  seconds  usecs/call  calls  errors syscall": the calls of each *xattr call
    calls = sum(int(line.split()[3]) for line in summary.splitlines()
                if line.split() and line.split()[-1].endswith("xattr"))
    assert 0 < calls < 10, summary


def put_tree(s3, bucket, root, prefix=""):
    """Uploads a local tree as s3fs would: every file with its mode, owner and mtime."""
    for d, dirs, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            key = prefix + os.path.relpath(p, root)
            with open(p, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read(), Metadata={
                    "mode": str(st.st_mode), "uid": str(st.st_uid), "gid": str(st.st_gid),
                    "mtime": str(int(st.st_mtime))})


def test_modes_owners_and_executables(s3, bucket, mount, local):
    """2. Modes and owners: x-amz-meta-mode/-uid/-gid/-mtime (as s3fs writes them) honoured;
    executables run; options for the rest; no write bit while read-only."""
    s3.put_object(Bucket=bucket, Key="bin/hello", Body=b"#!/bin/sh\necho hello from S3\n",
                  Metadata={"mode": S3FS_EXEC, "uid": "1234", "gid": "2345",
                            "mtime": "1600000000"})
    s3.put_object(Bucket=bucket, Key="bin/plain.txt", Body=b"text\n")
    s3.put_object(Bucket=bucket, Key="bin/octal", Body=b"#!/bin/sh\necho octal\n",
                  Metadata={"mode": "0750"})
    s3.put_object(Bucket=bucket, Key="bin/bad", Body=b"x", Metadata={"mode": "rwx", "uid": "-1"})
    m = mount(bucket)
    b = os.path.join(m.mnt, "bin")
    assert oct(os.stat(os.path.join(b, "octal")).st_mode & 0o777) == oct(0o550)  # a lookup
    os.listdir(b)             # the listing has no metadata: the kernel holds the defaults...
    r = run([os.path.join(b, "hello")])         # ...but asks before running a file
    assert r.returncode == 0 and r.stdout == "hello from S3\n", (r.returncode, r.stderr)
    st = os.stat(os.path.join(b, "hello"))
    assert oct(st.st_mode & 0o7777) == oct(0o555)
    assert (st.st_uid, st.st_gid, int(st.st_mtime)) == (1234, 2345, 1600000000)
    plain = os.stat(os.path.join(b, "plain.txt"))
    assert oct(plain.st_mode & 0o777) == oct(0o444) and plain.st_uid == os.getuid()
    bad = os.stat(os.path.join(b, "bad"))       # unparsable metadata: the defaults
    assert oct(bad.st_mode & 0o777) == oct(0o444) and bad.st_uid == os.getuid()
    assert oct(os.stat(b).st_mode & 0o777) == oct(0o555)
    r = run(["sh", "-c", os.path.join(b, "plain.txt")])
    assert r.returncode == 126, r.stderr                  # not executable: no x bit
    r = run(["ls", "-l", b])
    assert "-r-xr-xr-x 1 1234 2345" in r.stdout, r.stdout
    m.umount()

    m2 = mount(bucket, ["uid=4321", "gid=5432", "file_mode=0640", "dir_mode=0750", "umask=007"])
    b = os.path.join(m2.mnt, "bin")
    st = os.stat(os.path.join(b, "plain.txt"))
    assert (oct(st.st_mode & 0o777), st.st_uid, st.st_gid) == (oct(0o440), 4321, 5432)
    st = os.stat(os.path.join(b, "hello"))      # its own mode, less the umask; owner forced
    assert (oct(st.st_mode & 0o777), st.st_uid) == (oct(0o550), 4321)
    assert oct(os.stat(b).st_mode & 0o777) == oct(0o550)
    m2.umount()

    m3 = mount(bucket, ["object_meta=off"])
    st = os.stat(os.path.join(m3.mnt, "bin", "hello"))
    assert oct(st.st_mode & 0o777) == oct(0o444) and st.st_uid == os.getuid()


def test_metadata_comes_with_the_read(s3, bucket, mount):
    """2. A file read needs no HEAD for its metadata: the GET's answer carries it."""
    s3.put_object(Bucket=bucket, Key="d/tool", Body=b"#!/bin/sh\necho tool\n",
                  Metadata={"mode": S3FS_EXEC, "mtime": "1500000000"})
    m = mount(bucket, ["ttl=1h"])
    d = os.path.join(m.mnt, "d")
    os.listdir(d)                                # the kernel holds the listing's defaults
    path = os.path.join(d, "tool")
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o444)
    with open(path, "rb") as f:
        assert f.read() == b"#!/bin/sh\necho tool\n"
    heads = util.tierfs_stats(m.mnt)["tiers"]["s3"]["head"]
    st = os.stat(path)                           # after a read the kernel asks (atime)
    assert oct(st.st_mode & 0o777) == oct(0o555) and int(st.st_mtime) == 1500000000
    assert util.tierfs_stats(m.mnt)["tiers"]["s3"]["head"] == heads


@pytest.mark.parametrize("bad", ["uid=x", "gid=-3", "file_mode=999", "dir_mode=01777",
                                 "umask=8", "object_meta=maybe"])
def test_bad_owner_and_mode_options(bad, tmpdir_short):
    r = subprocess.run([util.tierfs_bin(), "-o", bad, "b", tmpdir_short], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and bad.split("=")[0] in r.stderr, r.stderr


def test_git_status_of_a_work_tree(s3, bucket, mount, local):
    """2. git status of a work tree on the mount (uploaded as s3fs does) reports nothing: the
    executable's mode survives."""
    wt = os.path.join(local, "wt")
    os.makedirs(os.path.join(wt, "src"))
    with open(os.path.join(wt, "run.sh"), "w") as f:
        f.write("#!/bin/sh\necho run\n")
    os.chmod(os.path.join(wt, "run.sh"), 0o755)
    with open(os.path.join(wt, "src", "main.c"), "w") as f:
        f.write("int main(void) { return 0; }\n")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e", HOME=local)
    for cmd in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "one"]):
        r = run(cmd, cwd=wt, env=env)
        assert r.returncode == 0, r.stderr
    put_tree(s3, bucket, wt)
    m = mount(bucket)
    r = run(["git", "-c", "safe.directory=*", "status", "--porcelain"], cwd=m.mnt, env=env)
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    r = run([os.path.join(m.mnt, "run.sh")])
    assert r.stdout == "run\n"


def tree_stat(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files + ([] if d != root else ["."]):
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_ino, int(st.st_mtime), st.st_mode)
    return out


def test_inodes_and_directory_times_are_stable(s3, s3server, bucket, tmpdir_short, local):
    """3, 4. Directory times are fixed (no marker object) and inode numbers derive from the
    key and version: both the same across a remount and a drop of the kernel's caches; so
    rsync -a retimes nothing and tar --listed-incremental finds nothing new."""
    util.put_many(s3, bucket, {"a/b/c.txt": b"c", "a/d.txt": b"d", "e.txt": b"e"})
    mnt = os.path.join(tmpdir_short, "m")
    home = os.path.join(tmpdir_short, "home")
    snap = os.path.join(local, "snap")
    dst = os.path.join(local, "dst")
    with util.Mount(bucket, mnt, s3server.endpoint, home=home) as m:
        first = tree_stat(m.mnt)
        assert first["a"][1] == DIR_MTIME and first["a/b"][1] == DIR_MTIME
        assert len({v[0] for v in first.values()}) == len(first)      # all distinct
        r = run(["rsync", "-a", m.mnt + "/", dst + "/"])
        assert r.returncode == 0, r.stderr
        r = run(["tar", f"--listed-incremental={snap}", "-cf", os.path.join(local, "0.tar"),
                 "-C", m.mnt, "."])
        assert r.returncode == 0, r.stderr
        if os.geteuid() == 0:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")   # dentries and inodes: the kernel forgets, and looks up again
            assert tree_stat(m.mnt) == first
    with util.Mount(bucket, mnt, s3server.endpoint, home=home) as m:
        assert tree_stat(m.mnt) == first
        r = run(["rsync", "-ai", m.mnt + "/", dst + "/"])
        assert r.returncode == 0 and r.stdout == "", r.stdout
        r = run(["tar", f"--listed-incremental={snap}", "-cf", os.path.join(local, "1.tar"),
                 "-C", m.mnt, "."])
        assert r.returncode == 0, r.stderr
        r = run(["tar", "-tf", os.path.join(local, "1.tar")])
        assert [n for n in r.stdout.split() if not n.endswith("/")] == [], r.stdout
        # a new version is a new file: a new inode number
        s3.put_object(Bucket=bucket, Key="e.txt", Body=b"e2")
        util.tierfs_ctl(m.mnt, "invalidate e.txt")
        time.sleep(0.3)
        assert os.stat(os.path.join(m.mnt, "e.txt")).st_ino != first["e.txt"][0]


def test_tail_follows_an_overwritten_object(s3, bucket, mount):
    """5. An object overwritten in S3 is a new file at its name, as if renamed over the old
    one: tail -F follows the new file, tail -f keeps the old one, neither fails."""
    s3.put_object(Bucket=bucket, Key="log.txt", Body=b"line 1\n")
    m = mount(bucket, ["ttl=1"])
    path = os.path.join(m.mnt, "log.txt")
    big_f = subprocess.Popen(["tail", "-F", "-s", "0.2", path], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    small_f = subprocess.Popen(["tail", "-f", "-s", "0.2", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        s3.put_object(Bucket=bucket, Key="log.txt", Body=b"line 1\nline 2\n")
        time.sleep(5)            # the TTL, then tail's checks (every 0.2 s, by name after 5)
        assert big_f.poll() is None and small_f.poll() is None
    finally:
        big_f.terminate()
        small_f.terminate()
        out_F, err_F = big_f.communicate(timeout=10)
        out_f, err_f = small_f.communicate(timeout=10)
    assert "line 2" in out_F, (out_F, err_F)
    assert "replaced" in err_F and "error" not in err_F.lower(), err_F
    assert out_f == "line 1\n" and err_f == "", (out_f, err_f)


def test_df_does_not_look_full(s3, bucket, mount):
    """6. df showed 100 % used (blocks and inodes)."""
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount(bucket)
    r = run(["df", "--output=pcent,ipcent", m.mnt])
    assert r.returncode == 0
    pcent = r.stdout.splitlines()[1].split()
    assert pcent == ["0%", "0%"], r.stdout
    sv = os.statvfs(m.mnt)
    assert sv.f_bavail == sv.f_blocks > 0 and sv.f_favail == sv.f_files > 0


def test_read_only_as_editors_see_it(s3, bucket, mount):
    """7. access(W_OK) is false, vim opens read-only, O_TRUNC is EROFS."""
    s3.put_object(Bucket=bucket, Key="f.txt", Body=b"keep me\n")
    m = mount(bucket, ["allow_other"])
    os.chmod(os.path.dirname(m.mnt), 0o755)   # the test's temporary directory, for nobody
    path = os.path.join(m.mnt, "f.txt")
    with pytest.raises(OSError) as e:
        os.open(path, os.O_RDONLY | os.O_TRUNC)
    assert e.value.errno in (errno.EROFS, errno.EACCES)
    assert open(path, "rb").read() == b"keep me\n"
    check = "import os,sys; sys.exit(0 if os.access(sys.argv[1], os.W_OK) else 3)"
    r = subprocess.run(["/usr/bin/python3", "-c", check, path], user=65534, group=65534)
    assert r.returncode == 3                   # nobody may write it
    if os.geteuid() != 0:
        assert not os.access(path, os.W_OK)
    vim = shutil.which("vim.tiny") or shutil.which("vim")
    assert vim, "vim-tiny is a test dependency (contrib/setup.sh)"
    out = os.path.join(m.mnt + "-vim.out")
    r = subprocess.run([vim, "-u", "NONE", "-N", "-es", "-c", f"redir! > {out}",
                        "-c", "set readonly?", "-c", "redir END", "-c", "q!", path],
                       capture_output=True, text=True, timeout=60)
    said = open(out).read().strip()
    os.unlink(out)
    assert said == "readonly", (said, r.stderr)


def test_revalidations_count_news_not_reads(s3, bucket, mount):
    """8. "revalidations kept" counted every entry of a cached listing (0, 2000, 4000 for two
    ls -l): it counts what S3 confirmed."""
    n = 2000
    util.put_many(s3, bucket, {f"d/f{i:05d}": b"x" for i in range(n)})
    m = mount(bucket, ["ttl=1h"])
    d = os.path.join(m.mnt, "d")
    for _ in range(2):
        assert len(run(["ls", "-l", d]).stdout.splitlines()) == n + 1
    assert util.tierfs_stats(m.mnt)["revalidations"]["kept"] == 0


def test_direct_io_shared_mmap_is_enodev(s3, bucket, mount):
    """9. With -o direct_io a shared mmap fails with ENODEV (libfuse 3.14 cannot ask the
    kernel to allow it; the README says so); a private mapping works."""
    body = os.urandom(200000)
    s3.put_object(Bucket=bucket, Key="m.bin", Body=body)
    m = mount(bucket, ["direct_io"])
    with open(os.path.join(m.mnt, "m.bin"), "rb") as f:
        with pytest.raises(OSError) as e:
            mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        assert e.value.errno == errno.ENODEV
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as mm:
            assert mm[:] == body
    readme = open(os.path.join(util.ROOT, "README.md")).read()
    assert "MAP_SHARED" in readme and "ENODEV" in readme


def test_control_files_have_their_size(s3, bucket, mount, local):
    """10. .tierfs files reported size 0, so rsync copied 0 bytes."""
    s3.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount(bucket)
    for name in ("stats", "stats.json", "metrics"):
        p = os.path.join(m.mnt, ".tierfs", name)
        assert os.stat(p).st_size > 100
        with open(p, "rb") as f:
            assert os.fstat(f.fileno()).st_size == len(f.read())
        r = run(["rsync", p, os.path.join(local, name)])
        assert r.returncode == 0, r.stderr
        got = open(os.path.join(local, name), "rb").read()
        assert len(got) > 100 and got.endswith(b"\n"), got[-100:]
