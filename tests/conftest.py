"""Fixtures: one S3 server per test session (s3rver, or RGW with TIERFS_S3_SERVER=rgw), a fresh bucket per test, and tierfs mounts that are
always unmounted (see util.Mount)."""

import itertools
import os
import shutil
import tempfile

import pytest

import util

_counter = itertools.count()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer tests (still part of the default run)")
    config.addinivalue_line("markers", "s3rver_only(why): the test depends on a quirk of "
                            "s3rver; against RGW it is skipped, saying which")


def pytest_collection_modifyitems(config, items):
    if util.s3_server_kind() != "rgw":
        return
    for item in items:
        m = item.get_closest_marker("s3rver_only")
        if m:
            item.add_marker(pytest.mark.skip(reason=f"s3rver only: {m.args[0]}"))


@pytest.fixture(scope="session", autouse=True)
def _fuse_available():
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        pytest.skip("FUSE is not available (/dev/fuse or fusermount3 missing)")


@pytest.fixture(scope="session")
def s3server():
    srv = util.new_server()
    try:
        yield srv.start()
    finally:
        srv.cleanup()


@pytest.fixture(scope="session")
def s3(s3server):
    return util.s3_client(s3server.endpoint)


@pytest.fixture
def bucket(s3):
    name = f"t{os.getpid()}-{next(_counter)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="tfs-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def mount(s3server, tmpdir_short, request):
    """mount(spec, options=[...], expect_log=[regex...]) -> a started util.Mount; every mount
    made is checked and cleaned up when the test ends."""
    mounts = []

    def make(spec, options=(), endpoint=None, **kw):
        mnt = os.path.join(tmpdir_short, f"mnt{len(mounts)}")
        m = util.Mount(spec, mnt, endpoint or s3server.endpoint, options, **kw)
        mounts.append(m)
        m.__enter__()
        return m

    yield make
    errors = []
    failed = getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed
    for m in reversed(mounts):
        if m.proc is None:
            continue
        if m.proc.poll() is not None and m.logf.closed:
            continue   # the test unmounted it itself
        if failed:
            m.kill()
            print(f"tierfs log ({m.mnt}):\n{m.log()}\nreproduce with: {m.reproducer()}")
            continue
        try:
            m.__exit__(None, None, None)
        except Exception as e:   # report every mount, then fail
            errors.append(e)
    if errors:
        raise errors[0]
