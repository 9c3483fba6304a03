"""Where the platform runs, behind one seam (placements/base.Placement): Docker on the local
engine (dev) or on an EC2 host, or ECS Fargate (`storiesofsoftware:placement: cluster`)."""

from __future__ import annotations

from components.platform_secrets import PlatformSecrets
from placements.base import Placement
from settings import Settings


def runs_minio(cfg: Settings) -> bool:
    """dev runs MinIO, whose root password is one of the generated secrets."""
    return not cfg.is_cloud


def for_stack(cfg: Settings, secrets: PlatformSecrets) -> Placement:
    # Imported when chosen: dev never loads the AWS and Cloudflare SDKs, the host never ECS's.
    if cfg.on_cluster:
        from placements.cluster import ClusterPlacement

        return ClusterPlacement(cfg, secrets)
    from placements.docker import DockerPlacement

    if cfg.is_cloud:
        from placements.host import HostEngine

        return DockerPlacement(cfg, secrets, HostEngine)
    from placements.local import LocalEngine

    return DockerPlacement(cfg, secrets, LocalEngine)
