"""The platform, composed once for every stack and placement.

The placement (placements/: the local Docker engine, an EC2 Docker host, or ECS Fargate) lays
its ground when built — providers, network, object storage, the data stores — and then runs the
services, each described once (services/), in the order they need one another: the API after
its migrations, the frontend after the API, n8n, the edge in front of them all, and what
watches them. Then the outputs every stack exports (composition/outputs.py).
"""

from __future__ import annotations

import placements
from components.platform_secrets import PlatformSecrets, PlatformSecretsArgs
from composition import outputs
from services import api, edge, frontend, n8n
from settings import Settings


def build(cfg: Settings) -> None:
    # Every placement keeps every generated secret: a switch from the host to the cluster must
    # not delete them (backupCipher still opens the host's pgBackRest repository).
    secrets = PlatformSecrets("secrets", PlatformSecretsArgs(
        with_minio=placements.runs_minio(cfg), protect=cfg.is_production,
        generations=cfg.secret_generations))
    place = placements.for_stack(cfg, secrets)
    wiring, pw = place.wiring, secrets.values

    api_run = place.run_service(api.service(cfg, wiring, pw["jwtAccess"], pw["jwtRefresh"]),
                                steps=[api.migrate(cfg), api.indexes(cfg)])
    frontend_run = place.run_service(frontend.service(cfg, wiring), after=[api_run])
    n8n_runs = ({process.name: place.run_service(process)
                 for process in n8n.processes(cfg, wiring, pw["postgresN8n"], pw["n8nEncryptionKey"])}
                if cfg.features.n8n else {})
    place.run_edge(edge.service(cfg), api_run, frontend_run, n8n_runs)
    place.observe()

    outputs.export_contract(outputs.Contract(
        site_url=cfg.origin(), api_url=cfg.origin("api"), n8n_url=cfg.origin("n8n"), grafana_url=place.grafana_url,
        buckets=wiring.storage.buckets, s3_endpoint=wiring.storage.endpoint, s3_region=wiring.storage.region,
        database_url=wiring.database_url, redis_url=wiring.redis_url, extra=place.outputs()))
