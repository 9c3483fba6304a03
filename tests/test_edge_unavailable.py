"""What a reader meets at the edge while an application is down (issue 29), with real nginx.

Each upstream is a small server here that answers as told, or is closed (its port refuses, as a
killed container's does). The generated configuration of every stack runs unchanged but for its
ports, paths and upstream addresses (testsupport/edge.remap)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler

import crossplane
import pytest

from configs import nginx as ng
from tests.test_edge_nginx import DOMAINS, host
from testsupport.edge import Nginx, _QuietServer
from testsupport.plans import EDGE_CONF, STACKS

UPSTREAMS = ("api", "frontend", "n8n", "grafana", ng.N8N_WEBHOOKS)


class Upstream:
    """An application that answers 200 (cacheable for one second where `cacheable`), or its own
    502 where `own_error`, until closed."""

    def __init__(self) -> None:
        self.own_error = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                status = 502 if upstream.own_error else 200
                body = json.dumps({"path": self.path, "status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                # /cached/ pages allow a shared cache one second, then stale copies on error.
                self.send_header("Cache-Control", "public, max-age=1" if self.path.startswith("/cached/")
                                 else "no-store")
                # No keep-alive: a closed upstream then refuses the next request at once, as a
                # killed container's address does.
                self.send_header("Connection", "close")
                self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=STACKS)
def edge(request, plan_files):
    stack = request.param
    upstreams = {name: Upstream() for name in UPSTREAMS}
    server = Nginx((plan_files[stack] / EDGE_CONF).read_text(), DOMAINS[stack],
                   upstreams={name: u.port for name, u in upstreams.items()})
    server.start()
    server.upstreams = upstreams  # type: ignore[attr-defined]
    server.domain_of = lambda kind: host(stack, kind)  # type: ignore[attr-defined]
    yield server
    server.stop()
    for u in upstreams.values():
        u.close()


def _headers(response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.getheaders()}


def test_a_down_api_answers_503_with_retry_after_in_json(edge):
    host = edge.domain_of("api")
    assert edge.https(host, "/v1/posts").status == 200
    edge.upstreams["api"].close()
    response = edge.https(host, "/v1/posts")
    headers = _headers(response)
    assert response.status == 503, response.body
    assert headers["retry-after"] == "10"
    assert headers["content-type"].startswith("application/json")
    assert json.loads(response.body) == {"error": "service unavailable", "retryAfterSeconds": 10}
    assert headers["cache-control"] == "no-store"
    # The error page is a location of its own: the security headers come again.
    assert headers["strict-transport-security"].startswith("max-age=")
    assert headers["content-security-policy"].startswith("default-src 'none'")
    # A named location is not a path a client can ask for.
    assert edge.https(host, "/@unavailable").status == 503 and edge.https(host, "@unavailable").status == 400


def test_the_sites_script_can_read_the_apis_503(edge):
    """The site calls the API cross-origin with credentials: the 503 carries CORS for the site's
    origin only (and exposes Retry-After), or the browser hides it from the script."""
    edge.upstreams["api"].close()
    site = edge.domain_of("site")
    origin = f"https://{site}"
    headers = _headers(edge.https(edge.domain_of("api"), "/v1/posts", headers={"Origin": origin}))
    assert headers["access-control-allow-origin"] == origin
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["access-control-expose-headers"] == "Retry-After" and headers["vary"] == "Origin"
    other = _headers(edge.https(edge.domain_of("api"), "/v1/posts", headers={"Origin": "https://evil.example"}))
    assert "access-control-allow-origin" not in other and "access-control-allow-credentials" not in other


def test_a_down_site_serves_its_stale_copy_then_a_503_page(edge):
    host = edge.domain_of("site")
    first = edge.https(host, "/cached/post")
    assert first.status == 200 and _headers(first)["x-cache-status"] == "MISS"
    edge.upstreams["frontend"].close()
    time.sleep(1.5)  # past max-age: only a stale copy is left
    stale = edge.https(host, "/cached/post")
    assert stale.status == 200 and _headers(stale)["x-cache-status"] == "STALE"
    assert json.loads(stale.body)["path"] == "/cached/post"
    never_cached = edge.https(host, "/uncached")
    headers = _headers(never_cached)
    assert never_cached.status == 503
    assert headers["retry-after"] == "10" and headers["content-type"].startswith("text/html")
    assert b'http-equiv="refresh" content="10"' in never_cached.body
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_n8n_and_grafana_down_answer_503(edge):
    """n8n's public webhooks for anyone; the editors and Grafana where this client is an admin
    (dev's admin network is 127.0.0.1; elsewhere nginx refuses it before any upstream)."""
    for name in ("n8n", ng.N8N_WEBHOOKS, "grafana"):
        edge.upstreams[name].close()
    admin = edge.domain_of("site") == "localhost"
    for kind, path, expected in (("n8n", "/webhook/x", 503), ("n8n", "/rest/settings", 503 if admin else 403),
                                 ("grafana", "/api/health", 503 if admin else 403)):
        response = edge.https(edge.domain_of(kind), path)
        assert response.status == expected, (kind, path, response.status)
        assert ("retry-after" in _headers(response)) is (expected == 503)


def test_an_applications_own_error_passes_through_untouched(edge):
    """Only nginx's own 502 (nothing answered) becomes the 503: a 502 the API sends itself is the
    API's answer, and reaches the client as it was."""
    edge.upstreams["api"].own_error = True
    response = edge.https(edge.domain_of("api"), "/v1/posts")
    assert response.status == 502
    assert "retry-after" not in _headers(response)
    assert json.loads(response.body) == {"path": "/v1/posts", "status": 502}


@pytest.mark.parametrize("stack", STACKS)
def test_every_proxying_server_has_the_unavailable_page_and_no_other_does(plan_files, stack, tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text((plan_files[stack] / EDGE_CONF).read_text())
    tree = crossplane.parse(str(conf), single=True, check_ctx=False, check_args=False)["config"][0]["parsed"]
    http = next(n for n in tree if n["directive"] == "http")["block"]
    for server in (n for n in http if n["directive"] == "server"):
        block = server["block"]
        proxies = any(d["directive"] == "proxy_pass" for loc in block if loc["directive"] == "location"
                      for d in loc["block"])
        pages = [d["args"] for d in block if d["directive"] == "error_page"]
        named = [loc for loc in block if loc["directive"] == "location" and loc["args"] == [ng.UNAVAILABLE]]
        assert (pages == [["502", "=503", ng.UNAVAILABLE]] and len(named) == 1) is proxies, server
