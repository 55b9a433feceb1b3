"""A fault-injecting HTTP proxy for tests: forwards requests to s3rver and, at configurable
rates, answers 500, 503 SlowDown, resets the connection, stalls past any deadline, truncates a
body, or declares a Content-Length longer than the body.  Rates are per request, drawn from a
seeded generator; counts of what was injected are kept."""

import http.client
import random
import socket
import socketserver
import struct
import threading

import util

FAULTS = ("500", "503", "reset", "stall", "truncate", "badlen")


class FaultProxy(util.LoopbackServer):
    def __init__(self, upstream_port, rates, seed=1, stall_s=30, list_body=None, delay_s=0):
        """list_body: if set, a function (request target) -> bytes or None; bytes replace the
        body of a ListObjectsV2 answer (hostile listings), None leaves it alone.  delay_s: every
        request waits this long before it is forwarded (a slow server)."""
        self.delay_s = delay_s
        self.list_body = list_body
        self.upstream_port = upstream_port
        self.rates = dict(rates)
        self.stall_s = stall_s
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.counts = {f: 0 for f in FAULTS}
        self.counts["ok"] = 0
        self.stopping = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy.serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.serve_on(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))

    def stop(self):
        self.stopping.set()
        super().stop()

    def pick(self):
        with self.lock:
            x = self.rnd.random()
            for f in FAULTS:
                x -= self.rates.get(f, 0)
                if x < 0:
                    self.counts[f] += 1
                    return f
            self.counts["ok"] += 1
            return None

    def serve(self, sock):
        f = sock.makefile("rb")
        while not self.stopping.is_set():
            line = f.readline(65536)
            if not line:
                return
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers = {}
            while True:
                h = f.readline(65536).decode("latin-1")
                if h in ("\r\n", "\n", ""):
                    break
                k, _, v = h.partition(":")
                headers[k.strip()] = v.strip()
            fault = self.pick()
            if self.delay_s:
                self.stopping.wait(self.delay_s)
            if fault == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return
            if fault == "stall":
                self.stopping.wait(self.stall_s)
                sock.close()
                return
            if fault in ("500", "503"):
                code = "InternalError" if fault == "500" else "SlowDown"
                body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
                reason = "Internal Server Error" if fault == "500" else "Service Unavailable"
                sock.sendall(f"HTTP/1.1 {fault} {reason}\r\nContent-Type: application/xml\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() +
                             (body if method != "HEAD" else b""))
                continue
            up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
            up.request(method, target, headers=headers)
            resp = up.getresponse()
            body = resp.read()
            up.close()
            out = [f"HTTP/1.1 {resp.status} {resp.reason}\r\n"]
            length = len(body) if method != "HEAD" else int(resp.getheader("Content-Length", "0"))
            if fault == "badlen" and method != "HEAD" and body:
                length += 100
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    out.append(f"{k}: {v}\r\n")
            out.append(f"Content-Length: {length}\r\n\r\n")
            data = "".join(out).encode("latin-1")
            if self.list_body and "list-type=2" in target and method == "GET":
                hostile = self.list_body(target)
                if hostile is not None:
                    body = hostile
                    data = "".join(out[:-1] + [f"Content-Length: {len(body)}\r\n\r\n"]
                                   ).encode("latin-1")
            if method != "HEAD":
                data += body[:len(body) // 2] if fault == "truncate" and body else body
            sock.sendall(data)
            if fault in ("truncate", "badlen") and method != "HEAD" and body:
                sock.close()   # the rest never comes
                return
