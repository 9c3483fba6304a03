"""The headers the edge sets on every response, per host: HSTS, the OWASP set and a Content
Security Policy as strict as each application allows (values only; configs/nginx.py writes them
as `add_header ... always` wherever a location adds a header)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from configs.nginx import EdgeConfig


def csp(kind: str, cfg: EdgeConfig) -> str:
    """Per host, each as strict as its application allows (the end-to-end suite opens every host
    in Chromium and fails on any violation). 'unsafe-inline' scripts stay where the framework
    inlines them without nonces (Next.js, n8n, Grafana); 'unsafe-eval' only where the application
    evaluates code in the browser: n8n's expression engine and Grafana (its own default policy)."""
    common = ["base-uri 'self'", "object-src 'none'", "form-action 'self'", "upgrade-insecure-requests"]
    if kind == "api":
        return "; ".join(["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'",
                          "form-action 'none'"])
    host = cfg.hosts[kind if kind in ("n8n", "grafana") else "site"]
    if kind == "n8n":
        return "; ".join(["default-src 'self'", "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
                          "style-src 'self' 'unsafe-inline'", "img-src 'self' data: blob: https:",
                          "font-src 'self' data:", f"connect-src 'self' wss://{host}{cfg.port_suffix}",
                          "worker-src 'self'", "frame-ancestors 'self'", *common])
    if kind == "grafana":
        # Grafana's own content_security_policy_template (conf/defaults.ini), less its nonce
        # (the edge has none to give; 'unsafe-inline' instead, as Grafana without CSP serves
        # its inline boot script) and less grafana.com (the news feed is off, update checks too).
        return "; ".join(["default-src 'self'", "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
                          "style-src 'self' 'unsafe-inline' blob:", "img-src 'self' data: blob: https:",
                          "font-src 'self' data:", f"connect-src 'self' wss://{host}{cfg.port_suffix}",
                          "worker-src 'self'", "manifest-src 'self'", "media-src 'none'",
                          "frame-ancestors 'self'", *common])
    api = cfg.hosts["api"] + cfg.port_suffix
    return "; ".join(["default-src 'self'", "script-src 'self' 'unsafe-inline'",
                      "style-src 'self' 'unsafe-inline'", "img-src 'self' data: https:",
                      "font-src 'self' data:", f"connect-src 'self' https://{api} wss://{api}",
                      "frame-ancestors 'none'", *common])


SECURITY_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy",
                    "Permissions-Policy", "Cross-Origin-Opener-Policy", "X-Permitted-Cross-Domain-Policies",
                    "Content-Security-Policy")
# What an application sends of these is dropped, so each reaches the browser once, as the edge
# sets it (Grafana sends its own X-Frame-Options, and X-XSS-Protection, which OWASP now advises
# against: it can open holes in old browsers).
HIDDEN_UPSTREAM_HEADERS = ("X-Powered-By", "X-XSS-Protection", *SECURITY_HEADERS)


def security_header_values(kind: str, cfg: EdgeConfig) -> dict[str, str]:
    frame = "SAMEORIGIN" if kind in ("n8n", "grafana") else "DENY"
    return dict(zip(SECURITY_HEADERS, (
        f"max-age={cfg.hsts_max_age}; includeSubDomains",
        "nosniff",
        frame,
        "strict-origin-when-cross-origin",
        "camera=(), microphone=(), geolocation=(), payment=()",
        "same-origin",
        "none",
        csp(kind, cfg),
    ), strict=True))
