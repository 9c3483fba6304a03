"""The Next.js frontend (standalone server), N replicas behind the edge proxy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

from components.api import PORT as API_PORT
from components.api import SERVICE as API_SERVICE
from components.container_service import (
    ContainerService,
    ContainerServiceArgs,
    Placement,
    node_http_check,
    scratch,
)
from settings import Limits

SERVICE = "frontend"
PORT = 3000
USER = "1001:1001"  # the seed's Dockerfile: adduser --uid 1001 nextjs


# Every placement checks it the same way (the cluster's task definitions too).
HEALTHCHECK = node_http_check(PORT, "/api/health", start_period="30s")

@dataclass
class FrontendArgs:
    placement: Placement
    image: str
    limits: Limits
    replicas: int
    edge_network: pulumi.Input[str]
    site_url: str
    api_url: str
    rollout_batch: int = 1
    drain_seconds: int = 30
    depends_on: Sequence[pulumi.Resource] = ()


class Frontend(pulumi.ComponentResource):
    """NEXT_PUBLIC_* variables are inlined into the bundle when the image is built; setting
    them here would change nothing in the browser. Only server-side values are runtime."""

    service: ContainerService
    ready: list[pulumi.Resource]
    # The edge routes to the exact containers (`upstreams`, new names on each deploy); Prometheus
    # scrapes the stable per-replica aliases, so its configuration does not change on a deploy.
    upstreams: list[pulumi.Output[str]]
    scrape_targets: list[str]

    def __init__(self, name: str, args: FrontendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Frontend", name, None, opts)
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.of(SERVICE, args, [args.edge_network], USER),
            env={
                "NODE_ENV": "production",
                "PORT": str(PORT),
                # A standalone server binds to the container's hostname unless told otherwise,
                # and the proxy would then be refused on the other interfaces.
                "HOSTNAME": "0.0.0.0",
                "NEXT_TELEMETRY_DISABLED": "1",
                "SITE_URL": args.site_url,
                "API_URL": args.api_url,
                # Server-side rendering talks to the API inside Docker, not through the edge.
                "API_INTERNAL_URL": f"http://{API_SERVICE}:{API_PORT}",
            },
            # The image optimiser and ISR write their cache here.
            tmpfs={"/tmp": scratch(64),
                   "/app/.next/cache": scratch(256)},
            healthcheck=HEALTHCHECK,
            replicas=args.replicas,
            # Start-first deploys; an old replica gets SIGTERM and this long to drain.
            rolling=True,
            rollout_batch=args.rollout_batch,
            stop_timeout=args.drain_seconds,
            depends_on=list(args.depends_on),
        ), opts=pulumi.ResourceOptions(parent=self))
        self.ready = list(self.service.containers)
        self.upstreams = [name.apply(lambda n: f"{n}:{PORT}") for name in self.service.names]
        self.scrape_targets = [f"{alias}:{PORT}" for alias in self.service.aliases]
        self.register_outputs({})
