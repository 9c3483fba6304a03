"""The platform, composed for where the stack runs: Docker containers on the local engine or an
EC2 host (platforms/containers.py), or ECS Fargate with RDS and ElastiCache
(platforms/cluster.py), chosen by `storiesofsoftware:placement`."""

from __future__ import annotations

from settings import Settings


def build(cfg: Settings) -> None:
    # Imported when chosen: dev never loads the AWS SDK, the host placement never the ECS parts.
    if cfg.on_cluster:
        from platforms import cluster

        cluster.build(cfg)
    else:
        from platforms import containers

        containers.build(cfg)
