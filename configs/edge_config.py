"""What one edge serves, as settings: its host names, its rate limits and the rest of
`EdgeConfig`, which configs/nginx.py renders into nginx.conf."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CACHE_DIR = "/var/cache/nginx"
# Two years: what hstspreload.org asks of a domain submitted for preloading (the edge's header
# and Cloudflare's both). Dev's localhost gets one year (placements/local.py says why).
HSTS_MAX_AGE = 63072000
DEV_HSTS_MAX_AGE = 31536000
DOCKER_DNS = "127.0.0.11"


def edge_hosts(domain: str, *, n8n: bool, grafana: bool) -> dict[str, str]:
    """Every host name the edge serves, by kind: the one place they are derived (the
    certificates, DNS records and server blocks all follow it)."""
    hosts = {"site": domain, "www": f"www.{domain}", "api": f"api.{domain}"}
    if n8n:
        hosts["n8n"] = f"n8n.{domain}"
    if grafana:
        hosts["grafana"] = f"grafana.{domain}"
    return hosts


@dataclass(frozen=True)
class RateLimit:
    zone: str
    rate: str
    burst: int
    # Requests whose key is empty are not counted.
    key: str = "$binary_remote_addr"


API_LIMIT = RateLimit("api", "10r/s", 20)


@dataclass(frozen=True)
class EdgeConfig:
    domain: str
    n8n_server: str | None
    grafana_server: str | None
    admin_cidrs: Sequence[str]
    real_ip_from: Sequence[str]         # Cloudflare's ranges; empty where nothing is in front
    client_ca: bool                     # verify Cloudflare's origin-pull client certificate
    # host:port of each API and frontend container: the exact containers of the current
    # deployment (their names change on each deploy; see ContainerService).
    api_servers: Sequence[str] = ()
    frontend_servers: Sequence[str] = ()
    hsts_max_age: int = HSTS_MAX_AGE
    resolver: str = DOCKER_DNS
    # Per route, per client address. Pages and REST calls get what a person clicking produces;
    # assets get what an editor's first load fetches at once (n8n's about 90 modules, Grafana's
    # bundles), so a real page load never meets a 429; logins and webhooks get little, so a
    # guessing or flooding client is stopped early.
    site_limit: RateLimit = RateLimit("site", "20r/s", 60)
    assets_limit: RateLimit = RateLimit("assets", "100r/s", 500)
    api_limit: RateLimit = API_LIMIT
    admin_limit: RateLimit = RateLimit("admin", "20r/s", 200)
    # Only password attempts count: the editors ask GET /rest/login (n8n) or load GET /login
    # (Grafana) on every page load, and those must never meet a 429.
    login_limit: RateLimit = RateLimit("login", "10r/m", 5, key="$login_attempt")
    webhook_limit: RateLimit = RateLimit("webhooks", "10r/s", 20)
    max_body: str = "10m"
    # The cluster placement: TLS and Cloudflare's client certificate end at the load balancer,
    # which forwards plain HTTP to HTTP_PORT and checks HEALTH_PORT; `real_ip_from` is then the
    # VPC (only the load balancer reaches the edge's tasks, and only Cloudflare reaches it).
    behind_load_balancer: bool = False
    # n8n's webhook processes (queue mode): its public entry points go there, the editor to
    # `n8n_server`.
    n8n_webhook_server: str | None = None
    # Writable on the cluster's read-only root: the task's ephemeral /tmp.
    cache_dir: str = CACHE_DIR
    # The caches' max_size (static assets, responses); the cluster's live in task memory.
    cache_max_mb: tuple[int, int] = (512, 1024)
    # How much of one response nginx may spool to /tmp for a slow client (nginx's default: 1024m,
    # on the host's disk); beyond it the upstream waits for the client instead.
    proxy_temp_file_max: str | None = None
    # The port browsers reach HTTPS_PORT on (dev's `edgePorts`): URLs carry it unless it is 443.
    public_https_port: int = 443
    # Retry-After on the edge's 503 while no upstream answers: about what a container's restart
    # and first health check take (the fault drill, tests/test_fault_drill.py, measures it).
    retry_after_s: int = 10

    @property
    def port_suffix(self) -> str:
        return "" if self.public_https_port == 443 else f":{self.public_https_port}"

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        return (self.site_limit, self.assets_limit, self.api_limit, self.admin_limit, self.login_limit,
                self.webhook_limit)

    @property
    def hosts(self) -> dict[str, str]:
        return edge_hosts(self.domain, n8n=bool(self.n8n_server), grafana=bool(self.grafana_server))
