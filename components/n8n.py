"""n8n on PostgreSQL, its encryption key generated and kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ContainerService,
    ContainerServiceArgs,
    Placement,
    VolumeMount,
    named_volume,
    node_http_check,
)
from configs.postgres import N8N_DATABASE, N8N_ROLE
from configs.postgres import PORT as PG_PORT
from settings import Limits

SERVICE = "n8n"
PORT = 5678
GRACEFUL_SHUTDOWN_SECONDS = 30
USER = "1000:1000"  # the image's `node` user


@dataclass
class N8nArgs:
    placement: Placement
    image: str
    limits: Limits
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    host: str
    postgres_host: str
    db_password: pulumi.Output[str]
    encryption_key: pulumi.Output[str]
    protect_data: bool
    depends_on: Sequence[pulumi.Resource] = ()


def n8n_env(host: str, postgres_host: str) -> dict[str, str]:
    """Plain settings. None of the variables n8n 1.0 removed (N8N_BASIC_AUTH_*, N8N_JWT_AUTH_*,
    N8N_USER_MANAGEMENT_DISABLED): the owner account is created in the editor on first visit."""
    return {
        "N8N_HOST": host,
        "N8N_PORT": str(PORT),
        "N8N_PROTOCOL": "https",
        "N8N_EDITOR_BASE_URL": f"https://{host}/",
        "WEBHOOK_URL": f"https://{host}/",
        # One proxy (nginx) sits in front; n8n then trusts its X-Forwarded-For.
        "N8N_PROXY_HOPS": "1",
        "N8N_SECURE_COOKIE": "true",
        "GENERIC_TIMEZONE": "UTC",
        "TZ": "UTC",
        "DB_TYPE": "postgresdb",
        "DB_POSTGRESDB_HOST": postgres_host,
        "DB_POSTGRESDB_PORT": str(PG_PORT),
        "DB_POSTGRESDB_DATABASE": N8N_DATABASE,
        "DB_POSTGRESDB_USER": N8N_ROLE,
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_RUNNERS_ENABLED": "true",
        # Workflows must not read the container's environment: it holds the database password
        # and the encryption key (n8n 1.123 still defaults to allowing it, and warns).
        "N8N_BLOCK_ENV_ACCESS_IN_NODE": "true",
        "N8N_GIT_NODE_DISABLE_BARE_REPOS": "true",
        # The editor would fetch banners and templates from api.n8n.io, a third party the edge's
        # CSP does not admit; off, so the policy stays 'self' (docs/architecture.md: how to turn them on).
        "N8N_DYNAMIC_BANNERS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_METRICS": "true",
        # A deploy stops the one main process: running executions get this long to finish.
        "N8N_GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACEFUL_SHUTDOWN_SECONDS),
    }


class N8n(pulumi.ComponentResource):
    service: ContainerService
    volume: docker.Volume
    ready: list[pulumi.Resource]
    upstream: str

    def __init__(self, name: str, args: N8nArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:N8n", name, None, opts)
        volume = named_volume(f"{name}-data", f"{args.placement.name_prefix}-n8n-data", args.placement.labels, self,
                              keep=args.protect_data)
        self.service = ContainerService(f"{name}-svc", replace(
            # edge: the proxy reaches the editor and webhooks, and workflows reach the internet.
            ContainerServiceArgs.of(SERVICE, args, [args.edge_network, args.data_network], USER),
            env=n8n_env(args.host, args.postgres_host),
            secret_env={
                "DB_POSTGRESDB_PASSWORD": args.db_password,
                # Losing it makes every stored credential unreadable: it lives in the stack's
                # state (protected in production) and is never regenerated.
                "N8N_ENCRYPTION_KEY": args.encryption_key,
            },
            volumes=[VolumeMount(volume.name, "/home/node/.n8n")],
            tmpfs={"/tmp": "rw,nosuid,size=128m,mode=1777"},
            healthcheck=node_http_check(PORT, "/healthz", start_period="120s"),
            # n8n's own shutdown ends first; Docker's SIGKILL is the backstop.
            stop_timeout=GRACEFUL_SHUTDOWN_SECONDS + 15,
            depends_on=list(args.depends_on),
        ), opts=pulumi.ResourceOptions(parent=self))
        self.volume = volume
        self.ready = list(self.service.containers)
        self.upstream = f"{SERVICE}:{PORT}"
        self.register_outputs({})
