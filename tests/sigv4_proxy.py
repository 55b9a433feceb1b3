"""A verifying HTTP proxy for tests: every request tierfs sends is checked against the
signature botocore's SigV4 signer computes for it, then forwarded to s3rver (which does not
verify V4 signatures itself).

The path and query are decoded and handed to botocore, which encodes them its own (canonical)
way: if tierfs encoded a key or a parameter differently from AWS's rules, the signature that curl
computed over tierfs's encoding cannot match."""

import http.client
import http.server
import re
import threading
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import util

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,\s*"
                     r"SignedHeaders=([^,]+),\s*Signature=([0-9a-f]{64})$")
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class Record:
    def __init__(self, method, path, query, headers, ok, reason, client_port):
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.client_port = client_port   # one per TCP connection
        self.ok, self.reason = ok, reason

    def __repr__(self):
        return f"<{self.method} {self.path}?{self.query} ok={self.ok} {self.reason}>"


class VerifyingProxy(util.LoopbackServer):
    def __init__(self, upstream_port, access_key, secret_key, region, token=None):
        self.upstream_port = upstream_port
        self.creds = Credentials(access_key, secret_key, token)
        self.access_key, self.region, self.token = access_key, region, token
        self.records = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                proxy.handle(self)

            def do_HEAD(self):
                proxy.handle(self)

        self.serve_on(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    def verify(self, h):
        auth = h.headers.get("Authorization", "")
        m = AUTH_RE.match(auth)
        if not m:
            return False, f"no or malformed Authorization header: {auth[:60]!r}"
        ak, date, region, service, signed, sig = m.groups()
        amz_date = h.headers.get("x-amz-date", "")
        if ak != self.access_key or region != self.region or service != "s3":
            return False, f"credential scope {ak}/{region}/{service}"
        if not amz_date.startswith(date):
            return False, "x-amz-date does not match the credential date"
        names = signed.split(";")
        if names != sorted(names):
            return False, "SignedHeaders not sorted"
        for need in ("host", "x-amz-date", "x-amz-content-sha256"):
            if need not in names:
                return False, f"{need} is not signed"
        if self.token and ("x-amz-security-token" not in names or
                           h.headers.get("x-amz-security-token") != self.token):
            return False, "session token missing or not signed"
        if h.headers.get("x-amz-content-sha256") not in (EMPTY_SHA256, "UNSIGNED-PAYLOAD"):
            return False, "x-amz-content-sha256 is not the empty payload hash"

        parts = urlsplit(h.path)
        path = quote(unquote(parts.path), safe="/~")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {n: h.headers.get(n, "") for n in names}
        req = AWSRequest(method=h.command, url=f"http://{h.headers['host']}{path}",
                         headers=headers, params=params)
        req.context["timestamp"] = amz_date
        signer = S3SigV4Auth(self.creds, "s3", self.region)
        canonical = signer.canonical_request(req)
        expected = signer.signature(signer.string_to_sign(req, canonical), req)
        if expected != sig:
            return False, f"signature mismatch; botocore's canonical request:\n{canonical}"
        return True, "ok"

    def handle(self, h):
        ok, reason = self.verify(h)
        parts = urlsplit(h.path)
        with self.lock:
            self.records.append(Record(h.command, unquote(parts.path), parts.query,
                                       dict(h.headers), ok, reason, h.client_address[1]))
        if not ok:
            body = b"<Error><Code>SignatureDoesNotMatch</Code></Error>"
            h.send_response(403)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body)
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        fwd = {k: v for k, v in h.headers.items() if k.lower() not in ("connection",)}
        conn.request(h.command, h.path, headers=fwd)
        resp = conn.getresponse()
        body = resp.read()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                h.send_header(k, v)
        length = resp.getheader("Content-Length") if h.command == "HEAD" else str(len(body))
        h.send_header("Content-Length", length or "0")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
        conn.close()
