"""Nginx at the edge: the one way in, on every placement. Its configuration comes as an edge
release (configs/edge_release.py), which each placement delivers its own way: a volume and a
reload on Docker, a variable of the task definition on the cluster."""

from __future__ import annotations

from configs import nginx
from services.spec import Healthcheck, Scratch, ServiceSpec
from settings import Settings

NAME = "edge"
USER = "101:101"  # the image's nginx user
HEALTHCHECK = Healthcheck(
    ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{nginx.HEALTH_PORT}{nginx.HEALTH_PATH}"],
    start_period="20s")


def service(cfg: Settings) -> ServiceSpec:
    return ServiceSpec(
        name=NAME, image=cfg.images["nginx"], limits=cfg.limits["nginx"], user=USER, port=nginx.HTTP_PORT,
        health=HEALTHCHECK,
        environment={"NGINX_ENTRYPOINT_QUIET_LOGS": "1"}, secrets={},
        # Request bodies and responses spooled for slow clients; the caches are the placement's.
        writable=(Scratch("/tmp", 64),),
        stop_timeout=cfg.drain_seconds,
        command=("nginx", "-c", nginx.CONF_PATH, "-g", "daemon off;"),
    )
