"""nginx.conf for the edge proxy (its settings: configs/edge_config.py), built as data with crossplane
and rendered by `render()`.

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
from typing import Any

import crossplane

from configs import edge_release as release
from configs.edge_config import CACHE_DIR as CACHE_DIR
from configs.edge_config import DEV_HSTS_MAX_AGE as DEV_HSTS_MAX_AGE
from configs.edge_config import DOCKER_DNS as DOCKER_DNS
from configs.edge_config import HSTS_MAX_AGE as HSTS_MAX_AGE
from configs.edge_config import EdgeConfig, RateLimit
from configs.edge_config import edge_hosts as edge_hosts
from configs.edge_headers import HIDDEN_UPSTREAM_HEADERS, security_header_values

HTTP_PORT = 8080   # unprivileged inside the container; Docker publishes 80 -> 8080
HTTPS_PORT = 8443  # and 443 -> 8443, so nginx needs no capability at all
HEALTH_PORT = 8081
# On the read-only root's /tmp tmpfs; apply-release.sh signals the master through it.
PID_FILE = "/tmp/nginx.pid"
HEALTH_PATH = "/healthz"
# stub_status for the nginx exporter: not published, so only containers on the edge network
# reach it, and the allow list keeps it to Docker's private address ranges besides.
STATUS_PORT = 8082
STATUS_PATH = "/stub_status"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.1/32")
# nginx runs the current release (configs/edge_release.py); the files it names are relative to
# the configuration's own directory, so a release is checked and loaded as one set.
CONF_PATH = f"{release.CURRENT}/{release.CONF_FILE}"
RESPONSES_CACHE = "responses"
STATIC_CACHE = "static"
# The cache zones' directories under the cache directory.
CACHE_ZONES = (STATIC_CACHE, RESPONSES_CACHE)

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
# Where a password (or a reset token) is tried: n8n's sign-in and reset routes, and the API's
# auth routes by the application contract (docs/architecture.md: /auth/... or /v1/auth/...).
N8N_LOGIN = r"^/rest/(login|forgot-password|change-password|resolve-password-token)$"
API_LOGIN = r"^/(v[0-9]+/)?auth/"
N8N_WEBHOOKS = "n8n_webhooks"
# Where nginx's own 502 goes (no upstream could be reached: the containers are restarting or
# gone): a 503 with Retry-After, which browsers, crawlers and API clients take as "come back",
# where a bare 502 says "broken". Named locations are per server, so each server has one.
UNAVAILABLE = "@unavailable"
# The applications' metrics (the monitoring contract: /metrics on every API and frontend
# replica) are Prometheus's, which scrapes the containers on their network: never the public's.
# Matched on nginx's normalised path, in any case, with what routers still take for it (Fastify
# ignores a trailing slash and, in its 4.x, cuts at `;`).
METRICS_PATH = r"^/metrics(?:/|;|$)"


Block = list[dict[str, Any]]


def d(directive: str, *args: object, block: Block | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"directive": directive, "args": [str(a) for a in args]}
    if block is not None:
        node["block"] = block
    return node


def security_headers(kind: str, cfg: EdgeConfig) -> Block:
    return [d("add_header", name, value, "always") for name, value in security_header_values(kind, cfg).items()]


def cached_as_the_application_says(kind: str, cfg: EdgeConfig) -> Block:
    """Caching that follows the upstream's own headers: a GET or HEAD without cookies or
    credentials is kept for the lifetime its Cache-Control (s-maxage, then max-age) or Expires
    grants, and nothing is kept without one; responses with Set-Cookie, `private`, `no-cache` or
    `no-store` are never kept (nginx's defaults, left on); stale copies answer while one request
    refreshes them in the background and while the upstream fails or times out (also as
    `stale-while-revalidate`/`stale-if-error` allow). X-Cache-Status says which it was."""
    return [
        d("proxy_cache", RESPONSES_CACHE),
        d("proxy_cache_key", "$scheme$host$request_uri"),
        # (and a WebSocket handshake is never answered from it)
        d("proxy_cache_bypass", "$sos_personal", "$http_upgrade"),
        d("proxy_no_cache", "$sos_personal", "$http_upgrade", "$sos_server_error"),
        d("proxy_cache_use_stale", "error", "timeout", "updating", "http_500", "http_502", "http_503", "http_504"),
        d("proxy_cache_background_update", "on"),
        d("proxy_cache_revalidate", "on"),
        # No proxy_cache_lock here: nginx cannot know before the answer that a page is one it
        # will not keep, so every concurrent request for a per-request page or an API call would
        # wait behind the first in 500 ms steps (measured: p99 4.8 s for the SSR page). An
        # expired page is refreshed by one request already (background update, stale meanwhile).
        *cache_status_headers(kind, cfg),
    ]


def cache_status_headers(kind: str, cfg: EdgeConfig) -> Block:
    """X-Cache-Status; an add_header in a location replaces the server's, so the security
    headers come again."""
    return [*security_headers(kind, cfg), d("add_header", "X-Cache-Status", "$upstream_cache_status", "always")]


def _size(mb: int) -> str:
    return f"{mb // 1024}g" if mb % 1024 == 0 else f"{mb}m"


# What an Application Load Balancer adds in mutual-TLS verify mode (ELB user guide, "Mutual
# authentication with TLS": HTTP headers): the client certificate is Cloudflare's, of no use to
# the applications, and the leaf alone takes a tenth of Node's 16 KiB header limit.
LOAD_BALANCER_MTLS_HEADERS = ("X-Amzn-Mtls-Clientcert-Serial-Number", "X-Amzn-Mtls-Clientcert-Issuer",
                              "X-Amzn-Mtls-Clientcert-Subject", "X-Amzn-Mtls-Clientcert-Validity",
                              "X-Amzn-Mtls-Clientcert-Leaf")


def proxy_to(cfg: EdgeConfig, upstream: str) -> Block:
    return [
        d("proxy_pass", f"http://{upstream}"),
        d("proxy_http_version", "1.1"),
        d("proxy_set_header", "Host", "$host"),
        # This proxy is the trust boundary: whatever X-Forwarded-For the client sent is dropped.
        d("proxy_set_header", "X-Forwarded-For", "$remote_addr"),
        d("proxy_set_header", "X-Real-IP", "$remote_addr"),
        d("proxy_set_header", "X-Forwarded-Proto", "https"),
        # With the port the browser used: n8n's push and Next.js's server actions compare it with
        # the Origin header, which carries any port other than 443.
        d("proxy_set_header", "X-Forwarded-Host", f"$host{cfg.port_suffix}"),
        # Empty Connection keeps upstream keepalive; "upgrade" passes WebSockets through.
        d("proxy_set_header", "Upgrade", "$http_upgrade"),
        d("proxy_set_header", "Connection", "$connection_upgrade"),
        # Behind the load balancer: its mutual-TLS headers (Cloudflare's client certificate, some
        # 1.5 KB of it) stop here; an empty value is nginx's way of not sending a header.
        *([d("proxy_set_header", name, "") for name in LOAD_BALANCER_MTLS_HEADERS]
          if cfg.behind_load_balancer else []),
        *[d("proxy_hide_header", name) for name in HIDDEN_UPSTREAM_HEADERS],
    ]


def upstream(name: str, servers: Sequence[str], keepalive: int) -> dict[str, Any]:
    block: Block = [d("zone", f"{name}_upstream", "256k"), d("least_conn")]
    # `resolve`: looked up through the resolver at run time, so a missing container neither
    # stops nginx from starting nor from serving the other hosts.
    block += [d("server", s, "resolve", "max_fails=3", "fail_timeout=10s") for s in servers]
    block += [d("keepalive", keepalive), d("keepalive_timeout", "60s")]
    return d("upstream", name, block=block)


UNAVAILABLE_BODY = {
    "api": ("application/json", '{"error":"service unavailable","retryAfterSeconds":%d}'),
    "site": ("text/html", "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                          "<meta http-equiv=\"refresh\" content=\"%d\"><title>Back in a moment</title></head>"
                          "<body><h1>Back in a moment</h1><p>This page is being restarted and will reload "
                          "on its own.</p></body></html>"),
}


def unavailable(kind: str, cfg: EdgeConfig) -> dict[str, Any]:
    """The answer when no upstream answered: only nginx's own 502 comes here (an application's
    own 5xx passes through untouched, proxy_intercept_errors being off), and a stale cached copy
    is served before it (proxy_cache_use_stale). Never cached by anyone."""
    content_type, body = UNAVAILABLE_BODY["api" if kind == "api" else "site"]
    # The site calls the API from its own origin with credentials: without the API's CORS
    # headers, which this answer lacks (no API gave it), its script could not read the 503 nor
    # when to retry. Empty for any other origin, and nginx sends no header with an empty value.
    cors = [d("add_header", "Access-Control-Allow-Origin", "$sos_cors_origin", "always"),
            d("add_header", "Access-Control-Allow-Credentials", "$sos_cors_credentials", "always"),
            d("add_header", "Access-Control-Expose-Headers", "Retry-After", "always"),
            d("add_header", "Vary", "Origin", "always")] if kind == "api" else []
    return d("location", UNAVAILABLE, block=[
        *security_headers(kind, cfg),
        *cors,
        d("add_header", "Retry-After", cfg.retry_after_s, "always"),
        d("add_header", "Cache-Control", "no-store", "always"),
        d("default_type", content_type),
        d("return", "503", body % cfg.retry_after_s),
    ])


def tls_server(name: str, kind: str, cfg: EdgeConfig, body: Block, proxied: bool = True) -> dict[str, Any]:
    """One host's server: TLS here, or plain HTTP from the load balancer that ended it."""
    listen = [d("listen", HTTP_PORT)] if cfg.behind_load_balancer else [d("listen", HTTPS_PORT, "ssl"),
                                                                         d("http2", "on")]
    return d("server", block=[
        *listen,
        d("server_name", name),
        *security_headers(kind, cfg),
        *([d("error_page", "502", "=503", UNAVAILABLE), unavailable(kind, cfg)] if proxied else []),
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
        # Written by the release installer: the release's id as $sos_release.
        d("include", release.RELEASE_FILE),
        d("default_type", "application/octet-stream"),
        d("server_tokens", "off"),
        # nginx's own redirects (`/rest` to `/rest/`) would name its listen port inside the
        # container (8443), which no browser reaches: relative ones keep the browser's address.
        d("absolute_redirect", "off"),
        d("charset", "utf-8"),
        d("sendfile", "on"), d("tcp_nopush", "on"), d("tcp_nodelay", "on"),
        d("keepalive_timeout", "65s"), d("keepalive_requests", "1000"),
        d("client_max_body_size", cfg.max_body),
        d("client_body_timeout", "15s"), d("client_header_timeout", "15s"),
        d("send_timeout", "30s"), d("reset_timedout_connection", "on"),
        d("large_client_header_buffers", "4", "16k"),
        d("proxy_connect_timeout", "5s"), d("proxy_send_timeout", "60s"),
        d("proxy_read_timeout", "60s"),
        # An application's headers in one buffer: Next.js sends a Link preload header per chunk
        # and a CSP, a session sends cookies. Past it nginx answers 502 ("upstream sent too big
        # header"), which reads as "Back in a moment" here (unavailable()). The busy size must be
        # at least the buffer's and below the proxy_buffers' total less one (8 x 4k by default).
        d("proxy_buffer_size", "16k"), d("proxy_busy_buffers_size", "16k"),
        # The root filesystem is read-only: every temporary file goes to the /tmp tmpfs.
        d("client_body_temp_path", "/tmp/nginx-client-body"),
        d("proxy_temp_path", "/tmp/nginx-proxy"),
        *([d("proxy_max_temp_file_size", cfg.proxy_temp_file_max)] if cfg.proxy_temp_file_max else []),
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
        d("map", "$request_method", "$login_attempt", block=[
            d("POST", "$binary_remote_addr"), d("default", "")]),
        *[d("limit_req_zone", lim.key, f"zone={lim.zone}:10m", f"rate={lim.rate}")
          for lim in cfg.limits],
        # The edge owns Cache-Control on immutable assets only when it is serving the asset: an
        # error (a replica that lacks a chunk during a deploy) must not be kept for a year.
        d("map", "$status", "$immutable_cache_control", block=[
            d("200", "public, max-age=31536000, immutable"),
            d("304", "public, max-age=31536000, immutable"),
            d("default", "no-store")]),
        d("limit_req_status", "429"),
        d("limit_req_log_level", "warn"),
        d("proxy_cache_path", f"{cfg.cache_dir}/{STATIC_CACHE}", "levels=1:2", f"keys_zone={STATIC_CACHE}:10m",
          f"max_size={_size(cfg.cache_max_mb[0])}", "inactive=30d", "use_temp_path=off"),
        # Pages and API answers, for as long as the application's Cache-Control allows. Kept a
        # week unused, so a page survives a frontend outage of that long as a stale copy.
        d("proxy_cache_path", f"{cfg.cache_dir}/{RESPONSES_CACHE}", "levels=1:2", f"keys_zone={RESPONSES_CACHE}:20m",
          f"max_size={_size(cfg.cache_max_mb[1])}", "inactive=7d", "use_temp_path=off"),
        # A request with a cookie or credentials may get a personal answer: never from the
        # cache, never into it.
        d("map", "$http_cookie$http_authorization", "$sos_personal", block=[d("default", "1"), d("", "0")]),
        # The site's own origin, for the API's 503 (unavailable()).
        d("map", "$http_origin", "$sos_cors_origin", block=[
            d("default", ""), d(f"https://{hosts['site']}{cfg.port_suffix}", "$http_origin")]),
        d("map", "$http_origin", "$sos_cors_credentials", block=[
            d("default", ""), d(f"https://{hosts['site']}{cfg.port_suffix}", "true")]),
        # A server error is never stored, whatever its headers say.
        d("map", "$upstream_status", "$sos_server_error", block=[d("default", "0"), d("~^5", "1")]),
    ]
    if not cfg.behind_load_balancer:
        http += [
            d("ssl_protocols", "TLSv1.2", "TLSv1.3"),
            d("ssl_ciphers", CIPHERS),
            d("ssl_prefer_server_ciphers", "off"),
            d("ssl_ecdh_curve", "X25519:prime256v1:secp384r1"),
            d("ssl_session_cache", "shared:TLS:10m"),
            d("ssl_session_timeout", "1d"),
            d("ssl_session_tickets", "off"),
            d("ssl_certificate", release.CERT_FILE),
            d("ssl_certificate_key", release.KEY_FILE),
        ]
    if cfg.client_ca and not cfg.behind_load_balancer:
        # Authenticated Origin Pulls: only a client certificate from this stack's own CA,
        # which Cloudflare presents for this stack's hostnames, completes a handshake.
        http += [d("ssl_client_certificate", release.CLIENT_CA_FILE),
                 d("ssl_verify_client", "on")]
    http += [
        upstream("api", cfg.api_servers, 32),
        upstream("frontend", cfg.frontend_servers, 32),
    ]
    if cfg.n8n_server:
        http.append(upstream("n8n", [cfg.n8n_server], 8))
    if cfg.n8n_webhook_server:
        http.append(upstream(N8N_WEBHOOKS, [cfg.n8n_webhook_server], 16))
    if cfg.grafana_server:
        http.append(upstream("grafana", [cfg.grafana_server], 8))

    if cfg.behind_load_balancer:
        # The load balancer ended TLS (HTTPS only; Cloudflare redirects plain HTTP): an unknown
        # Host gets no site.
        http.append(d("server", block=[d("listen", HTTP_PORT, "default_server"), d("return", "421")]))
    else:
        http += [
            # Unknown Host on port 80, unknown SNI on 443: no site, not even a certificate.
            d("server", block=[d("listen", HTTP_PORT, "default_server"), d("return", "444")]),
            d("server", block=[d("listen", HTTPS_PORT, "ssl", "default_server"),
                               d("ssl_reject_handshake", "on"),
                               # A known SNI with an unknown Host header lands here too.
                               d("return", "421")]),
            d("server", block=[d("listen", HTTP_PORT), d("server_name", *hosts.values()),
                               d("location", "/", block=[d("return", "301", f"https://$host{cfg.port_suffix}$request_uri")])]),
        ]
    http += [
        # Liveness for the container's healthcheck, on loopback only (the load balancer's
        # check too, on the cluster). It answers with the id of the release nginx runs, which
        # is how a deployment sees that a reload took effect.
        d("server", block=[d("listen", HEALTH_PORT if cfg.behind_load_balancer else f"127.0.0.1:{HEALTH_PORT}"),
                           d("access_log", "off"),
                           d("location", "=", HEALTH_PATH, block=[
                               d("default_type", "text/plain"),
                               d("return", "200", release.RELEASE_VARIABLE)])]),
        d("server", block=[
            d("listen", STATUS_PORT), d("access_log", "off"),
            d("location", "=", STATUS_PATH, block=[
                d("stub_status"), *[d("allow", cidr) for cidr in PRIVATE_RANGES], d("deny", "all")]),
            d("location", "/", block=[d("return", "404")]),
        ]),
    ]
    static = d("location", "/_next/static/", block=[
        # Content-hashed file names: safe to keep for a year, served from nginx's own cache.
        # Only a 200 is kept; a 404 (a replica that does not have the chunk yet) is asked of the
        # next replica instead, and never stored.
        d("proxy_cache", STATIC_CACHE),
        d("proxy_cache_valid", "200", "30d"),
        d("proxy_cache_lock", "on"),
        d("proxy_cache_use_stale", "error", "timeout", "updating", "http_500", "http_502", "http_503", "http_504"),
        d("proxy_next_upstream", "error", "timeout", "http_404"),
        d("proxy_ignore_headers", "Set-Cookie", "Cache-Control", "Expires"),
        d("proxy_hide_header", "Set-Cookie"),
        d("proxy_hide_header", "Cache-Control"),
        *limited(cfg.assets_limit),
        *cache_status_headers("site", cfg),
        d("add_header", "Cache-Control", "$immutable_cache_control", "always"),
        *proxy_to(cfg, "frontend"),
    ])
    http += [
        tls_server(hosts["site"], "site", cfg, [
            d("location", "~*", METRICS_PATH, block=[d("return", "404")]),
            static,
            d("location", "/", block=[*limited(cfg.site_limit), *cached_as_the_application_says("site", cfg),
                                      *proxy_to(cfg, "frontend")]),
        ]),
        tls_server(hosts["www"], "site", cfg, [
            d("location", "/", block=[d("return", "301", f"https://{hosts['site']}{cfg.port_suffix}$request_uri")]),
        ], proxied=False),
        tls_server(hosts["api"], "api", cfg, [
            d("location", "~*", METRICS_PATH, block=[d("return", "404")]),
            d("location", "~", API_LOGIN, block=[*limited(cfg.login_limit), *proxy_to(cfg, "api")]),
            d("location", "/", block=[*limited(cfg.api_limit), *cached_as_the_application_says("api", cfg),
                                      *proxy_to(cfg, "api")]),
        ]),
    ]
    if cfg.n8n_server:
        http.append(tls_server(hosts["n8n"], "n8n", cfg, [
            # Public: webhooks and forms, for anyone, at a webhook's pace.
            d("location", "~", N8N_PUBLIC, block=[*limited(cfg.webhook_limit),
                                                  *proxy_to(cfg, N8N_WEBHOOKS if cfg.n8n_webhook_server else "n8n")]),
            # Everything else is the editor, for admin networks only.
            d("location", "~", N8N_LOGIN, block=[*admin_only(cfg), *limited(cfg.login_limit), *proxy_to(cfg, "n8n")]),
            # REST calls and the push channel (a WebSocket held open for the editor's session).
            d("location", "/rest/", block=[*admin_only(cfg), *limited(cfg.admin_limit),
                                           d("proxy_read_timeout", "3600s"), *proxy_to(cfg, "n8n")]),
            # The editor's page, its ~90 JavaScript modules, node types and icons.
            d("location", "/", block=[*admin_only(cfg), *limited(cfg.assets_limit), *proxy_to(cfg, "n8n")]),
        ]))
    if cfg.grafana_server:
        http.append(tls_server(hosts["grafana"], "grafana", cfg, [
            d("location", "=", "/login", block=[*admin_only(cfg), *limited(cfg.login_limit),
                                               *proxy_to(cfg, "grafana")]),
            # REST calls (one per panel per refresh) and Grafana Live's WebSocket.
            d("location", "/api/", block=[*admin_only(cfg), *limited(cfg.admin_limit),
                                          d("proxy_read_timeout", "3600s"), *proxy_to(cfg, "grafana")]),
            d("location", "/public/", block=[*admin_only(cfg), *limited(cfg.assets_limit), *proxy_to(cfg, "grafana")]),
            d("location", "/", block=[*admin_only(cfg), *limited(cfg.site_limit), *proxy_to(cfg, "grafana")]),
        ]))
    return [
        d("worker_processes", "auto"),
        d("worker_rlimit_nofile", "16384"),
        d("pid", PID_FILE),
        d("error_log", "/dev/stderr", "warn"),
        d("events", block=[d("worker_connections", "4096"), d("multi_accept", "on")]),
        d("http", block=http),
    ]


def render(cfg: EdgeConfig) -> str:
    return "# Generated by the storiesofsoftware Pulumi program; edits are overwritten.\n" + \
        crossplane.build(build(cfg), indent=4) + "\n"
