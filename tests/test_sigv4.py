"""Every request tierfs signs carries the signature botocore computes for it: HEAD, ranged
(conditional) GET and paged ListObjectsV2, with keys and prefixes that need escaping, with and
without a session token."""

import os
import random

import pytest

import util
from sigv4_proxy import VerifyingProxy

KEYS = {
    "dir with space/ü+plus%pct?q#h&a=b~t.bin": random.Random(1).randbytes(200000),
    "dir with space/plain.txt": b"plain",
    "top (1).txt": b"parens",
}


@pytest.mark.parametrize("token,vhost", [(None, False), ("FQoGZXIvYXdzEXAMPLE+/token==", False),
                                         (None, True)])
def test_requests_match_botocore_signature(s3server, s3, bucket, mount, token, vhost):
    items = dict(KEYS)
    # 2,100 keys under an escaped prefix: three listing pages, continuation tokens
    items.update({f"many files/é {i:04d}.txt": b"x" for i in range(2100)})
    util.put_many(s3, bucket, items, workers=32)
    proxy = VerifyingProxy(s3server.port, util.ACCESS_KEY, util.SECRET_KEY, util.REGION,
                           token).start()
    try:
        env = {"AWS_SESSION_TOKEN": token} if token else None
        # vhost: curl resolves *.localhost to loopback itself, and s3rver (started with
        # --service-endpoint localhost) takes the bucket from BUCKET.s3.localhost
        endpoint = f"http://s3.localhost:{proxy.port}" if vhost else proxy.endpoint
        # connections=4: at most four GETs at once, so that reuse is what the count shows
        m = mount(bucket, ["chunk_size=64K", "connections=4"], endpoint=endpoint, env=env)
        # cold lookups (HEAD + one-key LIST), then a read of several chunks (ranged GETs)
        path = os.path.join(m.mnt, "dir with space", "ü+plus%pct?q#h&a=b~t.bin")
        with open(path, "rb") as f:
            assert f.read() == KEYS["dir with space/ü+plus%pct?q#h&a=b~t.bin"]
        assert len(os.listdir(os.path.join(m.mnt, "many files"))) == 2100
        for i in range(30):   # one GET each, one after another: they should share connections
            with open(os.path.join(m.mnt, "many files", f"é {i:04d}.txt"), "rb") as f:
                assert f.read() == b"x"
        assert sorted(os.listdir(os.path.join(m.mnt, "dir with space"))) == \
            ["plain.txt", "ü+plus%pct?q#h&a=b~t.bin"]
    finally:
        proxy.stop()
    bad = [r for r in proxy.records if not r.ok]
    assert not bad, bad[:3]
    recs = proxy.records
    assert any(r.method == "HEAD" for r in recs)
    gets = [r for r in recs if r.method == "GET" and "list-type" not in r.query]
    assert gets and all("range" in {k.lower() for k in r.headers} for r in gets)
    assert any("if-match" in {k.lower() for k in r.headers} for r in gets)
    lists = [r for r in recs if "list-type=2" in r.query]
    assert any("continuation-token=" in r.query for r in lists), "no paged listing was signed"
    assert any("prefix=many%20files%2F" in r.query for r in lists)
    # connections are reused: a few per GET in flight, not one per request
    conns = {r.client_port for r in recs}
    assert len(recs) >= 20 and len(conns) <= len(recs) // 4, (len(conns), len(recs))
    hosts = {r.headers.get("Host") for r in recs}
    if vhost:
        assert hosts == {f"{bucket}.s3.localhost:{proxy.port}"}
        assert all(not r.path.startswith(f"/{bucket}/") for r in recs)
    else:
        assert hosts == {f"127.0.0.1:{proxy.port}"}
        assert all(r.path.startswith(f"/{bucket}/") or r.path == f"/{bucket}/" for r in recs)
