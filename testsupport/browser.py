"""Debian's Chromium, driven by Playwright, reaching the edge under test as it would in real use.

The browser asks for `https://<host>/` on port 443 for every host of the stack, so the origins,
cookies and the CSP's host sources are exactly those of the stack. A CONNECT proxy on loopback
(`EdgeGateway`) carries each connection to the nginx under test:

- dev: a plain tunnel, as on a laptop: the browser does TLS and HTTP/2 with nginx itself;
- staging and production: it plays Cloudflare. It ends the browser's TLS with a certificate for
  the stack's names and opens its own TLS connection to the origin presenting the origin-pull
  client certificate, which those stacks' nginx demands.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from testsupport.tools import missing

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

CHROMIUM = "/usr/bin/chromium"
# As the machine notes say: without these, Chromium keeps trying the closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str:
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing("playwright", "bin/setup dev")
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path:
        return path
    missing("chromium", "Debian's package")


def spki_hash(cert: Path) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list wants: base64 SHA-256 of the key."""
    pem = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pem,
                         check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class EdgeGateway:
    """A CONNECT proxy on loopback that sends every `host:<public_port>` to the nginx under test."""

    def __init__(self, https_port: int, *, play_cloudflare: bool, public_port: int = 443, server_cert: Path, server_key: Path,
                 client_cert: Path | None = None, client_key: Path | None = None,
                 origin_ca: Path | None = None) -> None:
        self.https_port = https_port
        self.public_port = public_port
        self.play_cloudflare = play_cloudflare
        self.connects: list[str] = []
        if play_cloudflare:
            # Cloudflare to the browser: HTTP/1.1 over TLS with the stack's certificate.
            self.edge_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.edge_ctx.load_cert_chain(str(server_cert), str(server_key))
            self.edge_ctx.set_alpn_protocols(["http/1.1"])
            # Cloudflare to the origin: the origin-pull client certificate.
            self.origin_ctx = ssl.create_default_context(cafile=str(origin_ca or server_cert))
            assert client_cert and client_key
            self.origin_ctx.load_cert_chain(str(client_cert), str(client_key))
            self.origin_ctx.set_alpn_protocols(["http/1.1"])
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.port = 0

        async def serve() -> None:
            self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = self.server.sockets[0].getsockname()[1]
            started.set()

        self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
        self.thread.start()
        assert started.wait(10), "the gateway did not start"

    def _run(self, serve: Callable[[], Awaitable[None]]) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(serve())
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            host, _, port = target.rpartition(":")
            self.connects.append(target)
            if port != str(self.public_port):
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            if self.play_cloudflare:
                await writer.start_tls(self.edge_ctx)
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1", self.https_port, ssl=self.origin_ctx, server_hostname=host)
            else:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.https_port)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# Collected in the page before any of its own scripts run: every CSP violation, with what it hit.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push({directive: e.violatedDirective, blocked: e.blockedURI,
                               source: e.sourceFile, line: e.lineNumber, sample: e.sample});
});
"""


@dataclass
class PageLog:
    """Everything a page said that a user would not want: console errors, CSP violations (from
    the console too, since a violation in a worker or before the listener only shows there),
    failed requests and every HTTP status >= 400 the browser met."""

    console_errors: list[tuple[str, str]] = field(default_factory=list)  # (text, url)
    csp: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    statuses: list[tuple[int, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def problems(self, expected: frozenset[tuple[int, str]] = frozenset()) -> list[str]:
        """`expected`: (status, url) answers that are the application's own design, such as
        n8n's session probe answering 401 before anyone signed in. Chromium logs every such
        answer as a console error too; that line is excused with it and nothing else is."""
        excused_urls = {url for status, url in expected}
        return [*[f"{text} [{url}]" if url else text for text, url in self.console_errors
                  if not (text.startswith("Failed to load resource") and url in excused_urls)],
                *self.csp, *self.failed,
                *[f"{status} {url}" for status, url in self.statuses
                  if status >= 400 and (status, url) not in expected]]


class Browser:
    """One headless Chromium whose every host goes through the gateway."""

    def __init__(self, gateway: EdgeGateway, server_cert: Path) -> None:
        from playwright.sync_api import sync_playwright

        self.profile = Path(tempfile.mkdtemp(prefix="sos-chromium-"))
        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(
            executable_path=chromium_path(),
            args=[*CHROMIUM_ARGS,
                  f"--proxy-server=http://127.0.0.1:{gateway.port}",
                  # Loopback names (dev's *.localhost) go through the gateway too.
                  "--proxy-bypass-list=<-loopback>",
                  # Trust exactly the test certificate's key, nothing else.
                  f"--ignore-certificate-errors-spki-list={spki_hash(server_cert)}"],
            env={**os.environ, "HOME": str(self.profile)},
        )
        self.context = self.browser.new_context()
        self.context.add_init_script(CSP_LISTENER)

    @contextlib.contextmanager
    def page(self) -> Iterator[tuple[Page, PageLog]]:
        page = self.context.new_page()
        log = PageLog()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                text = message.text
                if "Content Security Policy" in text:
                    log.csp.append(text)
                else:
                    log.console_errors.append((text, message.location.get("url", "")))

        page.on("console", on_console)
        page.on("pageerror", lambda exc: log.console_errors.append((f"uncaught: {exc}\n{exc.stack}", "")))
        page.on("requestfailed", lambda r: log.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("request", lambda r: log.requests.append(r.url))
        page.on("response", lambda r: log.statuses.append((r.status, r.url)))
        try:
            yield page, log
        finally:
            page.close()

    @staticmethod
    def csp_violations(page: Page) -> list[dict]:
        return page.evaluate("window.__cspViolations || []")

    def close(self) -> None:
        self.context.close()
        self.browser.close()
        self._pw.stop()
        shutil.rmtree(self.profile, ignore_errors=True)
