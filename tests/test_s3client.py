"""The S3 client's contract, request by request (tests/s3check.c), against s3rver directly and
through the SigV4-verifying proxy (so whole and conditional GETs are checked against botocore
too, not only the requests a mount makes)."""

import os
import subprocess

import pytest

import util
from sigv4_proxy import VerifyingProxy


def s3check_bin():
    path = os.path.join(os.path.dirname(os.path.dirname(util.tierfs_bin())), "tests", "s3check")
    assert os.access(path, os.X_OK), f"{path} missing: build first"
    return path


@pytest.fixture
def seeded(s3, bucket):
    items = {"obj.bin": bytes(i % 251 for i in range(300000)), "p/sub/x": b"x"}
    items.update({f"p/k{i:02d}": b"abc" for i in range(20)})
    util.put_many(s3, bucket, items)
    # user metadata as s3fs (decimal st_mode) and rclone (fractional mtime) write it
    for key, meta in (("meta/s3fs", {"mode": "33261", "uid": "1234", "gid": "2345",
                                     "mtime": "1600000000.25"}),
                      ("meta/octal", {"mode": "0750"}),
                      ("meta/bad", {"mode": "rwx", "uid": "-1", "gid": "99999999999",
                                    "mtime": "yesterday"})):
        s3.put_object(Bucket=bucket, Key=key, Body=b"m", Metadata=meta)
    return bucket


@pytest.mark.parametrize("via_proxy", [False, True])
def test_s3_client_contract(s3server, seeded, via_proxy):
    proxy = None
    endpoint = s3server.endpoint
    if via_proxy:
        proxy = VerifyingProxy(s3server.port, util.ACCESS_KEY, util.SECRET_KEY, util.REGION).start()
        endpoint = proxy.endpoint
    try:
        r = subprocess.run([s3check_bin(), endpoint, seeded], capture_output=True, text=True,
                           timeout=120)
    finally:
        if proxy:
            proxy.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout
    if proxy:
        # every request but the deliberately wrong-keyed ones was signed as botocore would
        bad = [x for x in proxy.records if not x.ok and "credential scope WRONG" not in x.reason]
        assert not bad, bad[:3]
        assert any("if-none-match" in {k.lower() for k in x.headers} for x in proxy.records)
        assert any(x.method == "GET" and "range" not in {k.lower() for k in x.headers}
                   and "list-type" not in x.query for x in proxy.records)
