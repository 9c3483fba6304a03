"""nginx.conf for the edge proxy, built as data with crossplane and rendered by `render()`.

Every point the seed's configuration got wrong is a setting here: TLS per Mozilla's
intermediate profile with forward-secret AEAD suites only, HSTS and the OWASP headers on every
host (repeated wherever a location adds a header, since nginx does not inherit add_header into
a location that has its own), rate limits that are applied and keyed on the real client, the
real client taken from Cloudflare's header only when Cloudflare is the peer, unknown Host and
SNI refused, the n8n editor and Grafana for admin networks only, and upstreams resolved at run
time through Docker's DNS so nginx starts and keeps serving while a container is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import crossplane

HTTP_PORT = 8080   # unprivileged inside the container; Docker publishes 80 -> 8080
HTTPS_PORT = 8443  # and 443 -> 8443, so nginx needs no capability at all
HEALTH_PORT = 8081
# stub_status for the nginx exporter: not published, so only containers on the edge network
# reach it, and the allow list keeps it to Docker's private address ranges besides.
STATUS_PORT = 8082
STATUS_PATH = "/stub_status"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.1/32")
CONF_PATH = "/etc/sos/nginx/nginx.conf"
TLS_DIR = "/etc/sos/tls"
CACHE_DIR = "/var/cache/nginx"
DOCKER_DNS = "127.0.0.11"

# Mozilla intermediate (v5.7), minus the DHE suites: ECDHE only, so every suite is
# forward-secret and AEAD, and no dhparam file is needed. TLS 1.3 suites are OpenSSL's default.
CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])
GZIP_TYPES = ["text/plain", "text/css", "text/xml", "text/javascript", "application/javascript",
              "application/json", "application/xml", "application/rss+xml", "application/atom+xml",
              "application/manifest+json", "image/svg+xml", "font/ttf", "font/otf"]
# n8n's public entry points: production and test webhooks, waiting webhooks and forms.
N8N_PUBLIC = r"^/(webhook|webhook-test|webhook-waiting|form|form-test|form-waiting)/"


@dataclass(frozen=True)
class RateLimit:
    zone: str
    rate: str
    burst: int


@dataclass(frozen=True)
class EdgeConfig:
    domain: str
    api_servers: Sequence[str]          # host:port of each API replica
    frontend_servers: Sequence[str]     # host:port of each frontend replica
    n8n_server: str | None
    grafana_server: str | None
    admin_cidrs: Sequence[str]
    real_ip_from: Sequence[str]         # Cloudflare's ranges; empty where nothing is in front
    client_ca: bool                     # verify Cloudflare's origin-pull client certificate
    hsts_max_age: int = 63072000
    resolver: str = DOCKER_DNS
    site_limit: RateLimit = RateLimit("site", "20r/s", 60)
    api_limit: RateLimit = RateLimit("api", "10r/s", 20)
    admin_limit: RateLimit = RateLimit("admin", "10r/s", 40)
    webhook_limit: RateLimit = RateLimit("webhooks", "10r/s", 20)
    max_body: str = "10m"
    extra_listen: Sequence[str] = field(default_factory=tuple)

    @property
    def hosts(self) -> dict[str, str]:
        hosts = {"site": self.domain, "www": f"www.{self.domain}", "api": f"api.{self.domain}"}
        if self.n8n_server:
            hosts["n8n"] = f"n8n.{self.domain}"
        if self.grafana_server:
            hosts["grafana"] = f"grafana.{self.domain}"
        return hosts


Block = list[dict[str, Any]]


def d(directive: str, *args: object, block: Block | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"directive": directive, "args": [str(a) for a in args]}
    if block is not None:
        node["block"] = block
    return node


def csp(kind: str, cfg: EdgeConfig) -> str:
    """Per host, and never 'unsafe-eval'. 'unsafe-inline' stays for scripts the framework
    inlines (Next.js without nonces)."""
    common = ["base-uri 'self'", "object-src 'none'", "form-action 'self'", "upgrade-insecure-requests"]
    if kind == "api":
        return "; ".join(["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'",
                          "form-action 'none'"])
    if kind in ("n8n", "grafana"):
        host = cfg.hosts[kind]
        return "; ".join(["default-src 'self'", "script-src 'self' 'unsafe-inline'",
                          "style-src 'self' 'unsafe-inline'", "img-src 'self' data: https:",
                          "font-src 'self' data:", f"connect-src 'self' wss://{host}",
                          "worker-src 'self' blob:", "frame-ancestors 'self'", *common])
    return "; ".join(["default-src 'self'", "script-src 'self' 'unsafe-inline'",
                      "style-src 'self' 'unsafe-inline'", "img-src 'self' data: https:",
                      "font-src 'self' data:", f"connect-src 'self' https://{cfg.hosts['api']}",
                      "frame-ancestors 'none'", *common])


def security_headers(kind: str, cfg: EdgeConfig) -> Block:
    frame = "SAMEORIGIN" if kind in ("n8n", "grafana") else "DENY"
    return [
        d("add_header", "Strict-Transport-Security", f"max-age={cfg.hsts_max_age}; includeSubDomains", "always"),
        d("add_header", "X-Content-Type-Options", "nosniff", "always"),
        d("add_header", "X-Frame-Options", frame, "always"),
        d("add_header", "Referrer-Policy", "strict-origin-when-cross-origin", "always"),
        d("add_header", "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()", "always"),
        d("add_header", "Cross-Origin-Opener-Policy", "same-origin", "always"),
        d("add_header", "X-Permitted-Cross-Domain-Policies", "none", "always"),
        d("add_header", "Content-Security-Policy", csp(kind, cfg), "always"),
    ]


def proxy_to(upstream: str) -> Block:
    return [
        d("proxy_pass", f"http://{upstream}"),
        d("proxy_http_version", "1.1"),
        d("proxy_set_header", "Host", "$host"),
        # This proxy is the trust boundary: whatever X-Forwarded-For the client sent is dropped.
        d("proxy_set_header", "X-Forwarded-For", "$remote_addr"),
        d("proxy_set_header", "X-Real-IP", "$remote_addr"),
        d("proxy_set_header", "X-Forwarded-Proto", "https"),
        d("proxy_set_header", "X-Forwarded-Host", "$host"),
        # Empty Connection keeps upstream keepalive; "upgrade" passes WebSockets through.
        d("proxy_set_header", "Upgrade", "$http_upgrade"),
        d("proxy_set_header", "Connection", "$connection_upgrade"),
        d("proxy_hide_header", "X-Powered-By"),
    ]


def upstream(name: str, servers: Sequence[str], keepalive: int) -> dict[str, Any]:
    block: Block = [d("zone", f"{name}_upstream", "256k"), d("least_conn")]
    # `resolve`: looked up through the resolver at run time, so a missing container neither
    # stops nginx from starting nor from serving the other hosts.
    block += [d("server", s, "resolve", "max_fails=3", "fail_timeout=10s") for s in servers]
    block += [d("keepalive", keepalive), d("keepalive_timeout", "60s")]
    return d("upstream", name, block=block)


def tls_server(name: str, kind: str, cfg: EdgeConfig, body: Block) -> dict[str, Any]:
    return d("server", block=[
        d("listen", HTTPS_PORT, "ssl"),
        d("http2", "on"),
        d("server_name", name),
        *security_headers(kind, cfg),
        *body,
    ])


def limited(limit: RateLimit) -> Block:
    return [d("limit_req", f"zone={limit.zone}", f"burst={limit.burst}", "nodelay")]


def admin_only(cfg: EdgeConfig) -> Block:
    return [*[d("allow", cidr) for cidr in cfg.admin_cidrs], d("deny", "all")]


def build(cfg: EdgeConfig) -> Block:
    hosts = cfg.hosts
    http: Block = [
        d("include", "/etc/nginx/mime.types"),
        d("default_type", "application/octet-stream"),
        d("server_tokens", "off"),
        d("charset", "utf-8"),
        d("sendfile", "on"), d("tcp_nopush", "on"), d("tcp_nodelay", "on"),
        d("keepalive_timeout", "65s"), d("keepalive_requests", "1000"),
        d("client_max_body_size", cfg.max_body),
        d("client_body_timeout", "15s"), d("client_header_timeout", "15s"),
        d("send_timeout", "30s"), d("reset_timedout_connection", "on"),
        d("large_client_header_buffers", "4", "16k"),
        d("proxy_connect_timeout", "5s"), d("proxy_send_timeout", "60s"),
        d("proxy_read_timeout", "60s"),
        # The root filesystem is read-only: every temporary file goes to the /tmp tmpfs.
        d("client_body_temp_path", "/tmp/nginx-client-body"),
        d("proxy_temp_path", "/tmp/nginx-proxy"),
        d("fastcgi_temp_path", "/tmp/nginx-fastcgi"),
        d("uwsgi_temp_path", "/tmp/nginx-uwsgi"),
        d("scgi_temp_path", "/tmp/nginx-scgi"),
        d("log_format", "edge", '$remote_addr - [$time_iso8601] "$host" "$request" $status '
          '$body_bytes_sent $request_time "$http_referer" "$http_user_agent" '
          "upstream=$upstream_addr cache=$upstream_cache_status"),
        # Buffered: one write per 64 kB of log lines (at most a second late), not one per request.
        d("access_log", "/dev/stdout", "edge", "buffer=64k", "flush=1s"),
        d("gzip", "on"), d("gzip_vary", "on"), d("gzip_proxied", "any"),
        d("gzip_comp_level", "5"), d("gzip_min_length", "256"),
        d("gzip_types", *GZIP_TYPES),
        d("resolver", cfg.resolver, "valid=10s", "ipv6=off"),
        d("resolver_timeout", "5s"),
    ]
    if cfg.real_ip_from:
        http += [d("set_real_ip_from", cidr) for cidr in cfg.real_ip_from]
        http += [d("real_ip_header", "CF-Connecting-IP"), d("real_ip_recursive", "off")]
    http += [
        d("map", "$http_upgrade", "$connection_upgrade", block=[d("default", "upgrade"), d("", "")]),
        *[d("limit_req_zone", "$binary_remote_addr", f"zone={lim.zone}:10m", f"rate={lim.rate}")
          for lim in (cfg.site_limit, cfg.api_limit, cfg.admin_limit, cfg.webhook_limit)],
        d("limit_req_status", "429"),
        d("limit_req_log_level", "warn"),
        d("proxy_cache_path", f"{CACHE_DIR}/static", "levels=1:2", "keys_zone=static:10m",
          "max_size=512m", "inactive=30d", "use_temp_path=off"),
        d("ssl_protocols", "TLSv1.2", "TLSv1.3"),
        d("ssl_ciphers", CIPHERS),
        d("ssl_prefer_server_ciphers", "off"),
        d("ssl_ecdh_curve", "X25519:prime256v1:secp384r1"),
        d("ssl_session_cache", "shared:TLS:10m"),
        d("ssl_session_timeout", "1d"),
        d("ssl_session_tickets", "off"),
        d("ssl_certificate", f"{TLS_DIR}/origin.crt"),
        d("ssl_certificate_key", f"{TLS_DIR}/origin.key"),
    ]
    if cfg.client_ca:
        # Authenticated Origin Pulls: only a client certificate from this stack's own CA,
        # which Cloudflare presents for this stack's hostnames, completes a handshake.
        http += [d("ssl_client_certificate", f"{TLS_DIR}/origin-pull-ca.crt"),
                 d("ssl_verify_client", "on")]
    http += [
        upstream("api", cfg.api_servers, 32),
        upstream("frontend", cfg.frontend_servers, 32),
    ]
    if cfg.n8n_server:
        http.append(upstream("n8n", [cfg.n8n_server], 8))
    if cfg.grafana_server:
        http.append(upstream("grafana", [cfg.grafana_server], 8))

    http += [
        # Unknown Host on port 80, unknown SNI on 443: no site, not even a certificate.
        d("server", block=[d("listen", HTTP_PORT, "default_server"), d("return", "444")]),
        d("server", block=[d("listen", HTTPS_PORT, "ssl", "default_server"),
                           d("ssl_reject_handshake", "on"),
                           # A known SNI with an unknown Host header lands here too.
                           d("return", "421")]),
        d("server", block=[d("listen", HTTP_PORT), d("server_name", *hosts.values()),
                           d("location", "/", block=[d("return", "301", "https://$host$request_uri")])]),
        # Liveness for the container's healthcheck, on loopback only.
        d("server", block=[d("listen", f"127.0.0.1:{HEALTH_PORT}"), d("access_log", "off"),
                           d("location", "=", "/healthz", block=[d("return", "200", "ok")])]),
        d("server", block=[
            d("listen", STATUS_PORT), d("access_log", "off"),
            d("location", "=", STATUS_PATH, block=[
                d("stub_status"), *[d("allow", cidr) for cidr in PRIVATE_RANGES], d("deny", "all")]),
            d("location", "/", block=[d("return", "404")]),
        ]),
    ]
    static = d("location", "/_next/static/", block=[
        # Content-hashed file names: safe to keep for a year, served from nginx's own cache.
        d("proxy_cache", "static"),
        d("proxy_cache_valid", "200", "301", "302", "30d"),
        d("proxy_cache_valid", "404", "1m"),
        d("proxy_cache_lock", "on"),
        d("proxy_cache_use_stale", "error", "timeout", "updating", "http_500", "http_502", "http_503", "http_504"),
        d("proxy_ignore_headers", "Set-Cookie", "Cache-Control", "Expires"),
        d("proxy_hide_header", "Set-Cookie"),
        *security_headers("site", cfg),
        d("add_header", "Cache-Control", "public, max-age=31536000, immutable", "always"),
        d("add_header", "X-Cache-Status", "$upstream_cache_status", "always"),
        *proxy_to("frontend"),
    ])
    http += [
        tls_server(hosts["site"], "site", cfg, [
            *limited(cfg.site_limit),
            static,
            d("location", "/", block=proxy_to("frontend")),
        ]),
        tls_server(hosts["www"], "site", cfg, [
            d("location", "/", block=[d("return", "301", f"https://{hosts['site']}$request_uri")]),
        ]),
        tls_server(hosts["api"], "api", cfg, [
            *limited(cfg.api_limit),
            d("location", "/", block=proxy_to("api")),
        ]),
    ]
    if cfg.n8n_server:
        http.append(tls_server(hosts["n8n"], "n8n", cfg, [
            d("location", "~", N8N_PUBLIC, block=[*limited(cfg.webhook_limit), *proxy_to("n8n")]),
            # The editor, its REST API and its push channel: admin networks only.
            d("location", "/", block=[*admin_only(cfg), *limited(cfg.admin_limit),
                                      d("proxy_read_timeout", "3600s"), *proxy_to("n8n")]),
        ]))
    if cfg.grafana_server:
        http.append(tls_server(hosts["grafana"], "grafana", cfg, [
            d("location", "/", block=[*admin_only(cfg), *limited(cfg.admin_limit), *proxy_to("grafana")]),
        ]))
    return [
        d("worker_processes", "auto"),
        d("worker_rlimit_nofile", "16384"),
        d("pid", "/tmp/nginx.pid"),
        d("error_log", "/dev/stderr", "warn"),
        d("events", block=[d("worker_connections", "4096"), d("multi_accept", "on")]),
        d("http", block=http),
    ]


def render(cfg: EdgeConfig) -> str:
    return "# Generated by the storiesofsoftware Pulumi program; edits are overwritten.\n" + \
        crossplane.build(build(cfg), indent=4) + "\n"
