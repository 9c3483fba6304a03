"""The Next.js frontend (standalone server).

NEXT_PUBLIC_* variables are inlined into the bundle when the image is built; setting them here
would change nothing in the browser. Only server-side values are runtime."""

from __future__ import annotations

from services import api
from services.spec import Scratch, ServiceSpec, Wiring, node_http_check
from settings import Settings

NAME = "frontend"
PORT = 3000
USER = "1001:1001"  # the seed's Dockerfile: adduser --uid 1001 nextjs
HEALTHCHECK = node_http_check(PORT, "/api/health", start_period="30s")


def service(cfg: Settings, wiring: Wiring) -> ServiceSpec:
    return ServiceSpec(
        name=NAME, image=cfg.images["frontend"], limits=cfg.limits["frontend"], user=USER, port=PORT,
        health=HEALTHCHECK,
        environment={
            "NODE_ENV": "production",
            "PORT": str(PORT),
            # A standalone server binds to the container's hostname unless told otherwise, and
            # the proxy would then be refused on the other interfaces.
            "HOSTNAME": "0.0.0.0",
            "NEXT_TELEMETRY_DISABLED": "1",
            "SITE_URL": cfg.origin(),
            "API_URL": cfg.origin("api"),
            # Server-side rendering talks to the API directly, not through the edge.
            "API_INTERNAL_URL": f"http://{wiring.host(api.NAME)}:{api.PORT}",
        },
        secrets={},
        # The image optimiser and ISR write their cache in .next/cache (the image has /app/.next
        # owned by nextjs).
        writable=(Scratch("/tmp", 64), Scratch("/app/.next/cache", 256)),
        stop_timeout=cfg.drain_seconds,
    )
