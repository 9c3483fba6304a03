"""What an operator edits most: the services, the image each runs (pinned), and their limits.

Plain data. settings/loader.py validates whatever a stack file sets over these; docs/configuration.md's
tables are generated from them (settings/docs.py).
"""

from __future__ import annotations

from typing import Any

# Every container the platform runs. Image and limit maps are keyed by these names, so a typo
# in a stack file (`images.postgress`) is an error rather than a silently ignored key.
SERVICES = (
    "api",
    "frontend",
    "n8n",
    "postgres",
    "redis",
    "minio",
    "minioClient",
    "nginx",
    "prometheus",
    "grafana",
    "nodeExporter",
    "postgresExporter",
    "redisExporter",
    "nginxExporter",
)
# Containers that run another service's image still get limits of their own.
LIMITED_SERVICES = (*SERVICES, "backup")


DEFAULT_IMAGES = {
    "api": "ghcr.io/storiesofsoftware/api:1.0.0",
    "frontend": "ghcr.io/storiesofsoftware/frontend:1.0.0",
    # n8n's release workflow pushes each version to GHCR as to Docker Hub: GHCR's copy is cached
    # by ECR on the cluster, and no placement spends Docker Hub's 10 anonymous pulls an hour.
    "n8n": "ghcr.io/n8n-io/n8n:1.123.5",
    "postgres": "postgres:16.10-alpine",
    "redis": "redis:7.4.5-alpine",
    "minio": "minio/minio:RELEASE.2025-04-22T22-12-26Z",
    "minioClient": "minio/mc:RELEASE.2025-04-16T18-13-26Z",
    "nginx": "nginx:1.28.0-alpine",
    "prometheus": "prom/prometheus:v3.5.0",
    "grafana": "grafana/grafana:12.1.1",
    "nodeExporter": "prom/node-exporter:v1.9.1",
    "postgresExporter": "prometheuscommunity/postgres-exporter:v0.17.1",
    # The -alpine variant: the plain image is FROM scratch and has nothing to healthcheck with.
    "redisExporter": "oliver006/redis_exporter:v1.74.0-alpine",
    "nginxExporter": "nginx/nginx-prometheus-exporter:1.4.2",
}


def _limits(memory: str, cpus: float, pids: int = 256) -> dict[str, Any]:
    return {"memory": memory, "cpus": cpus, "pids": pids}


DEV_LIMITS = {
    "api": _limits("512m", 1.0),
    "frontend": _limits("512m", 1.0),
    "n8n": _limits("512m", 1.0, 512),
    "postgres": _limits("1g", 1.0, 512),
    "redis": _limits("256m", 0.5, 64),
    "minio": _limits("512m", 0.5),
    "minioClient": _limits("128m", 0.25, 64),
    "nginx": _limits("256m", 0.5),
    "prometheus": _limits("512m", 0.5),
    "grafana": _limits("256m", 0.5),
    "nodeExporter": _limits("64m", 0.1, 64),
    "postgresExporter": _limits("64m", 0.1, 64),
    "redisExporter": _limits("64m", 0.1, 64),
    "nginxExporter": _limits("64m", 0.1, 64),
    # pgBackRest (process-max=2, zstd) and pg_dump; uploads stream from disk.
    "backup": _limits("512m", 1.0, 128),
}
CLOUD_LIMITS = {
    **DEV_LIMITS,
    "api": _limits("768m", 1.0),
    "postgres": _limits("2g", 1.5, 512),
    "redis": _limits("512m", 0.5, 64),
    "prometheus": _limits("1g", 0.5),
}
