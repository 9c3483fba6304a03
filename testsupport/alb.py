"""The cluster placement's Application Load Balancer, played on loopback as the plan configures it.

The stand-in takes the load balancer, its listener and the edge's target group from the plan
(`AlbConfig.from_plan`) and refuses a setting it does not model, so a plan that changes how the
load balancer treats requests fails here instead of being tested as something it is not. What it
does, as AWS documents it (read 2026-12; pages under docs.aws.amazon.com/elasticloadbalancing/
latest/application/):

- the HTTPS listener ends TLS with the stack's certificate, TLS 1.2 and up (the listener's
  `ELBSecurityPolicy-TLS13-1-2-2021-06`, describe-ssl-policies.html), HTTP/1.1;
- mutual TLS in verify mode (mutual-authentication.html): a client without a certificate from
  the trust store's CA fails the handshake and reaches nothing; a verified client's certificate
  travels to the target as X-Amzn-Mtls-Clientcert-Serial-Number (hexadecimal), -Issuer and
  -Subject (RFC 2253 distinguished names), -Validity (ISO 8601 notBefore and notAfter) and -Leaf
  (the URL-encoded PEM, `+=/` left as they are), the formats as AWS's mTLS demonstration
  (mtls.exampleloadbalancer.com) lists them; the Validity's `NotBefore=...;NotAfter=...` spelling
  and the hexadecimal's case are not checked against a real load balancer (nothing here reads
  them);
- X-Forwarded-For (x-forwarded-headers.html): `routing.http.xff_header_processing.mode` append
  (the default): the client's address is appended to the header the client sent, or becomes it;
  preserve and remove as named; with `routing.http.xff_client_port.enabled`, `address:port`;
- X-Forwarded-Proto and X-Forwarded-Port (same page): the listener's protocol and port (what
  becomes of ones a client sent, AWS does not say: they are replaced here);
- X-Amzn-Trace-Id (load-balancer-request-tracing.html): `Root=1-<8 hex epoch>-<24 hex>` when
  the request has none; a Self field inserted in front when its header has a Root, or updated
  when it has a Self;
- Host (`routing.http.preserve_host_header.enabled`, default false): AWS's announcement of the
  attribute (repost.aws, "New ALB enhancements provide options to specify how to process Host
  header and X-Forwarded-For header") has the listener's port appended, with a non-default port
  as its example; here a port other than 80 or 443 is appended, so on this 443 listener the Host
  is unchanged (the edge's nginx drops a port from $host either way);
- `routing.http.drop_invalid_header_fields.enabled`: header names other than letters, digits
  and hyphens are dropped;
- `routing.http.x_amzn_tls_version_and_cipher_suite.enabled`: X-Amzn-Tls-Version and
  X-Amzn-Tls-Cipher-Suite, in OpenSSL's names;
- the target group's health check: the target gets no request before its check answered the
  matcher `healthyThreshold` times (back to back here, not `interval` apart);
- the idle timeout: a connection with no byte either way for `idleTimeout` seconds is closed.

What it does not model: HTTP/2 towards clients (Cloudflare pulls from origins over HTTP/1.1),
several targets and their balancing, connections to the target pooled apart from the client's
(each client connection has its own here, so a target closing a kept-alive connection shows as
the client's closing, not as the real one's occasional 502), health checks after the first,
fail-open when every target is unhealthy, desync mitigation (requests here are well formed), the
load balancer's own error pages beyond a bare 502, the 7 KB limit on X-Amzn-Trace-Id's rewriting,
header rename and response header modification (the plan sets none; `from_plan` refuses them),
passthrough mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import secrets
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from offline import harness
from testsupport.edge import OriginClient, TestPki

LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
# The TLS versions each listener security policy admits (describe-ssl-policies.html).
SSL_POLICIES = {"ELBSecurityPolicy-TLS13-1-2-2021-06": ssl.TLSVersion.TLSv1_2}
# What each resource's inputs may hold for the stand-in to stand in for it: anything else in the
# plan is a setting it does not model.
MODELLED_LOAD_BALANCER = {
    "name", "namePrefix", "tags", "internal", "subnets", "subnetMappings", "securityGroups", "loadBalancerType",
    "accessLogs", "connectionLogs", "enableDeletionProtection", "ipAddressType", "enableHttp2",
    "desyncMitigationMode", "dropInvalidHeaderFields", "idleTimeout", "xffHeaderProcessingMode",
    "enableXffClientPort", "preserveHostHeader", "enableTlsVersionAndCipherSuiteHeaders",
}
MODELLED_LISTENER = {"loadBalancerArn", "port", "protocol", "sslPolicy", "certificateArn", "mutualAuthentication",
                     "defaultActions", "tags"}
MODELLED_TARGET_GROUP = {"name", "namePrefix", "tags", "port", "protocol", "protocolVersion", "targetType", "vpcId",
                         "deregistrationDelay", "healthCheck"}
VALID_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
MTLS_PREFIX = "x-amzn-mtls-"


@dataclass(frozen=True)
class AlbConfig:
    """What the stand-in does, from the plan's load balancer, listener and target group."""

    listener_port: int
    listener_protocol: str
    minimum_tls: ssl.TLSVersion
    mtls_mode: str | None
    target_port: int
    health_port: int
    health_path: str
    health_matcher: str
    healthy_threshold: int
    idle_timeout: int = 60
    xff_mode: str = "append"
    xff_client_port: bool = False
    preserve_host: bool = False
    drop_invalid_header_fields: bool = False
    tls_headers: bool = False

    @classmethod
    def from_plan(cls, plan: harness.Plan) -> AlbConfig:
        lb = _inputs(plan, LOAD_BALANCER, MODELLED_LOAD_BALANCER)
        listener = _inputs(plan, LISTENER, MODELLED_LISTENER)
        group = _inputs(plan, TARGET_GROUP, MODELLED_TARGET_GROUP)
        if lb.get("loadBalancerType", "application") != "application":
            raise NotImplementedError(f"a {lb['loadBalancerType']} load balancer")
        if listener["protocol"] != "HTTPS" or group["protocol"] != "HTTP" or \
                group.get("protocolVersion", "HTTP1") != "HTTP1":
            raise NotImplementedError("an HTTPS listener forwarding HTTP/1.1 is the one shape modelled")
        (action,) = listener["defaultActions"]
        if action["type"] != "forward":
            raise NotImplementedError(f"a listener's {action['type']} action")
        mtls = listener.get("mutualAuthentication") or {}
        mode = mtls.get("mode", "off")
        if mode not in ("off", "verify") or mtls.get("ignoreClientCertificateExpiry") or \
                mtls.get("advertiseTrustStoreCaNames", "off") != "off":
            raise NotImplementedError(f"mutual TLS as {mtls}")
        health = group.get("healthCheck") or {}
        if health.get("protocol", "HTTP") != "HTTP" or not str(health.get("matcher", "200")).isdigit():
            raise NotImplementedError(f"a health check as {health}")
        port = health.get("port", "traffic-port")
        # Without one, AWS gives an HTTPS listener ELBSecurityPolicy-2016-08 (TLS 1.0 and up).
        policy = listener.get("sslPolicy", "ELBSecurityPolicy-2016-08")
        if policy not in SSL_POLICIES:
            raise NotImplementedError(f"the security policy {policy}")
        return cls(
            listener_port=int(listener["port"]), listener_protocol=listener["protocol"],
            minimum_tls=SSL_POLICIES[policy],
            mtls_mode=None if mode == "off" else mode,
            target_port=int(group["port"]),
            health_port=int(group["port"]) if port == "traffic-port" else int(port),
            health_path=health.get("path", "/"), health_matcher=str(health.get("matcher", "200")),
            healthy_threshold=int(health.get("healthyThreshold", 5)),
            idle_timeout=int(lb.get("idleTimeout", 60)),
            xff_mode=lb.get("xffHeaderProcessingMode", "append"),
            xff_client_port=bool(lb.get("enableXffClientPort", False)),
            preserve_host=bool(lb.get("preserveHostHeader", False)),
            drop_invalid_header_fields=bool(lb.get("dropInvalidHeaderFields", False)),
            tls_headers=bool(lb.get("enableTlsVersionAndCipherSuiteHeaders", False)),
        )


def _inputs(plan: harness.Plan, type_: str, modelled: set[str]) -> dict[str, Any]:
    inputs = harness.unwrap(plan.one(type_).inputs)
    unknown = sorted(set(inputs) - modelled)
    if unknown:
        raise NotImplementedError(f"the load balancer stand-in does not model {type_} {unknown}")
    return inputs


def trace_id() -> str:
    """`1-<epoch seconds, 8 hex digits>-<24 hex digits>`."""
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


def traced(value: str | None) -> str:
    """X-Amzn-Trace-Id as the load balancer forwards it."""
    if value is None:
        return f"Root={trace_id()}"
    fields = [f.strip() for f in value.split(";") if f.strip()]
    if not any(f.startswith("Root=") for f in fields):
        # AWS documents no header without a Root: it gets one, as a request without the header
        # does.
        return ";".join([f"Root={trace_id()}", *fields])
    return ";".join([f"Self={trace_id()}", *[f for f in fields if not f.startswith("Self=")]])


def mtls_headers(certificate_der: bytes) -> list[tuple[str, str]]:
    """The verified client certificate as verify mode passes it on."""
    cert = x509.load_der_x509_certificate(certificate_der)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return [
        ("X-Amzn-Mtls-Clientcert-Serial-Number", f"{cert.serial_number:X}"),
        ("X-Amzn-Mtls-Clientcert-Issuer", cert.issuer.rfc4514_string()),
        ("X-Amzn-Mtls-Clientcert-Subject", cert.subject.rfc4514_string()),
        ("X-Amzn-Mtls-Clientcert-Validity", f"NotBefore={cert.not_valid_before_utc.strftime(stamp)};"
                                            f"NotAfter={cert.not_valid_after_utc.strftime(stamp)}"),
        ("X-Amzn-Mtls-Clientcert-Leaf", quote(cert.public_bytes(Encoding.PEM).decode(), safe="+=/")),
    ]


class LoadBalancer(OriginClient):
    """One listener on loopback in front of one target (the edge's nginx); `targets` maps the
    task's container ports (the target group's port and its health check's) to where they
    listen here. `requests`: how many requests it forwarded."""

    def __init__(self, config: AlbConfig, pki: TestPki, targets: Mapping[int, int]) -> None:
        self.config = config
        self.pki = pki
        self.target = targets[config.target_port]
        self.requests = 0
        self._wait_healthy(targets[config.health_port])
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = config.minimum_tls
        self.ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
        self.ctx.set_alpn_protocols(["http/1.1"])
        if config.mtls_mode == "verify":
            # The trust store: the stack's origin-pull CA (Cloudflare's client certificate).
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(str(pki.client_ca))
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.port = 0

        async def serve() -> None:
            self.server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.ctx)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
        self.thread.start()
        assert started.wait(10), "the load balancer did not start"

    @property
    def origin_port(self) -> int:
        return self.port

    def _wait_healthy(self, port: int) -> None:
        passed = 0
        deadline = time.monotonic() + 30
        while passed < self.config.healthy_threshold:
            assert time.monotonic() < deadline, f"the target never passed its health check on {port}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", self.config.health_path)
                ok = str(conn.getresponse().status) == self.config.health_matcher
                conn.close()
            except OSError:
                ok = False
            passed = passed + 1 if ok else 0
            if not ok:
                time.sleep(0.2)

    def _run(self, serve: Callable[[], Awaitable[None]]) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(serve())
        self.loop.run_forever()

    # -------------------------------------------------------------- what reaches the target

    def forwarded(self, headers: list[tuple[str, str]], client: tuple[str, int],
                  connection_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """A request's header fields as the load balancer sends them on."""
        cfg = self.config
        own = {"x-forwarded-proto", "x-forwarded-port", "x-amzn-trace-id", "x-amzn-tls-version",
               "x-amzn-tls-cipher-suite"}
        out = [(k, v) for k, v in headers
               if not (cfg.drop_invalid_header_fields and not VALID_HEADER_NAME.fullmatch(k))
               and k.lower() not in own and not k.lower().startswith(MTLS_PREFIX)
               and not (k.lower() == "x-forwarded-for" and cfg.xff_mode != "preserve")]
        if not cfg.preserve_host and cfg.listener_port not in (80, 443):
            out = [(k, v if k.lower() != "host" or ":" in v else f"{v}:{cfg.listener_port}") for k, v in out]
        added: list[tuple[str, str]] = []
        if cfg.xff_mode == "append":
            sent = [v for k, v in headers if k.lower() == "x-forwarded-for"]
            address = f"{client[0]}:{client[1]}" if cfg.xff_client_port else client[0]
            added.append(("X-Forwarded-For", ", ".join([*sent, address])))
        added.append(("X-Forwarded-Proto", cfg.listener_protocol.lower()))
        added.append(("X-Forwarded-Port", str(cfg.listener_port)))
        sent_trace = next((v for k, v in headers if k.lower() == "x-amzn-trace-id"), None)
        added.append(("X-Amzn-Trace-Id", traced(sent_trace)))
        added += connection_headers
        return out + added

    def _connection_headers(self, ssl_object: ssl.SSLObject) -> list[tuple[str, str]]:
        added: list[tuple[str, str]] = []
        if self.config.mtls_mode == "verify":
            added += mtls_headers(ssl_object.getpeercert(binary_form=True))
        if self.config.tls_headers:
            added += [("X-Amzn-Tls-Version", ssl_object.version() or ""),
                      ("X-Amzn-Tls-Cipher-Suite", (ssl_object.cipher() or ("",))[0])]
        return added

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = writer.get_extra_info("peername")
        connection_headers = self._connection_headers(writer.get_extra_info("ssl_object"))
        last = [self.loop.time()]
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        requests = asyncio.ensure_future(self._requests(reader, up_writer, client, connection_headers, last))
        responses = asyncio.ensure_future(self._pipe(up_reader, writer, last))
        idle = asyncio.ensure_future(self._idle(last))
        tasks = [requests, responses, idle]
        try:
            # The connection ends when the target ends it or it sat idle; a client that is done
            # sending still gets the answer in flight.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if done == {requests}:
                with contextlib.suppress(Exception):
                    up_writer.write_eof()
                await asyncio.wait([responses, idle], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _requests(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, client: tuple[str, int],
                        connection_headers: list[tuple[str, str]], last: list[float]) -> None:
        """Each request's head, rewritten, then its body as it came; a WebSocket upgrade turns
        the rest of the connection into a tunnel."""
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                                 ssl.SSLError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                last[0] = self.loop.time()
                request_line, *lines = head[:-4].decode("latin-1").split("\r\n")
                headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
                self.requests += 1
                fields = self.forwarded(headers, client, connection_headers)
                up.write((request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields) + "\r\n")
                         .encode("latin-1"))
                names = {k.lower(): v.lower() for k, v in headers}
                if "chunked" in names.get("transfer-encoding", ""):
                    await self._chunked(reader, up, last)
                elif int(names.get("content-length", "0") or 0):
                    await self._exactly(reader, up, int(names["content-length"]), last)
                await up.drain()
                if names.get("upgrade"):
                    # Whatever the target answers: a browser never reuses the connection of a
                    # refused WebSocket handshake.
                    await self._pipe(reader, up, last)
                    return

    @staticmethod
    async def _exactly(reader: asyncio.StreamReader, up: asyncio.StreamWriter, size: int, last: list[float]) -> None:
        while size:
            data = await reader.read(min(size, 65536))
            if not data:
                raise ConnectionError("the client closed in the middle of a body")
            size -= len(data)
            up.write(data)
            last[0] = asyncio.get_running_loop().time()

    async def _chunked(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, last: list[float]) -> None:
        while True:
            line = await reader.readuntil(b"\r\n")
            up.write(line)
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    up.write(trailer)
                up.write(b"\r\n")
                return
            await self._exactly(reader, up, size + 2, last)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, last: list[float]) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            while data := await reader.read(65536):
                last[0] = asyncio.get_running_loop().time()
                writer.write(data)
                await writer.drain()

    async def _idle(self, last: list[float]) -> None:
        while self.loop.time() - last[0] < self.config.idle_timeout:
            await asyncio.sleep(1)

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            # Connections still open (a browser's kept-alive ones) end here, not when the loop
            # is collected.
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
