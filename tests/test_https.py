"""An https endpoint: s3rver with a self-signed certificate for 127.0.0.1, trusted through
-o ca_file=.  Without it the certificate is refused and the mount fails cleanly."""

import os
import subprocess
import tempfile

import pytest

import util


@pytest.fixture(scope="module")
def tls_server():
    d = tempfile.mkdtemp(prefix="tierfs-tls-")
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    srv = util.S3Server(tls=(key, cert)).start()
    try:
        import boto3
        s3 = boto3.client("s3", endpoint_url=srv.endpoint, verify=cert,
                          aws_access_key_id=util.ACCESS_KEY, aws_secret_access_key=util.SECRET_KEY,
                          region_name=util.REGION)
        s3.create_bucket(Bucket="tls")
        s3.put_object(Bucket="tls", Key="secure/file.bin", Body=b"over https" * 50000)
        yield srv, cert
    finally:
        srv.cleanup()
        subprocess.run(["rm", "-rf", d])


def test_https_with_ca_file(tls_server, mount):
    srv, cert = tls_server
    assert srv.endpoint.startswith("https://")
    m = mount("tls", [f"ca_file={cert}"], endpoint=srv.endpoint)
    with open(os.path.join(m.mnt, "secure", "file.bin"), "rb") as f:
        assert f.read() == b"over https" * 50000


def test_https_untrusted_certificate_refused(tls_server, tmp_path):
    srv, _ = tls_server
    env = util.daemon_env(str(tmp_path))
    r = util.run_tierfs(["-f", "-o", f"endpoint={srv.endpoint}", "tls", str(tmp_path)], env,
                        str(tmp_path))
    assert r.returncode == 1
    assert "certificate" in r.stderr.lower() or "ssl" in r.stderr.lower(), r.stderr
    assert not os.path.ismount(tmp_path)
