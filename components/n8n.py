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
    scratch,
)
from configs.n8n import DATA_DIR, GRACEFUL_SHUTDOWN_SECONDS, PORT, SERVICE, STATIC_CACHE_DIR, USER, n8n_env
from settings import Limits

# Every placement checks it the same way (the cluster's task definitions too).
HEALTHCHECK = node_http_check(PORT, "/healthz", start_period="120s")
# n8n's own shutdown ends first; the SIGKILL after this long is the backstop.
STOP_TIMEOUT = GRACEFUL_SHUTDOWN_SECONDS + 15

@dataclass
class N8nArgs:
    placement: Placement
    image: str
    limits: Limits
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    origin: str  # https://n8n.<domain>[:port], as the browser has it
    postgres_host: str
    db_password: pulumi.Output[str]
    encryption_key: pulumi.Output[str]
    protect_data: bool
    depends_on: Sequence[pulumi.Resource] = ()


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
            env=n8n_env(args.origin, args.postgres_host),
            secret_env={
                "DB_POSTGRESDB_PASSWORD": args.db_password,
                # Losing it makes every stored credential unreadable: it lives in the stack's
                # state (protected in production) and is never regenerated.
                "N8N_ENCRYPTION_KEY": args.encryption_key,
            },
            volumes=[VolumeMount(volume.name, DATA_DIR)],
            tmpfs={"/tmp": scratch(128, executable=True),
                   STATIC_CACHE_DIR: "rw,noexec,nosuid,size=128m,uid={},gid={},mode=0700".format(*USER.split(":"))},
            healthcheck=HEALTHCHECK,
            stop_timeout=STOP_TIMEOUT,
            depends_on=list(args.depends_on),
            # The image runs `tini -- /docker-entrypoint.sh` (n8n's docker/images/n8n/Dockerfile).
            opt_outs=frozenset({"own-init"}),
        ), opts=pulumi.ResourceOptions(parent=self))
        self.volume = volume
        self.ready = list(self.service.containers)
        self.upstream = f"{SERVICE}:{PORT}"
        self.register_outputs({})
