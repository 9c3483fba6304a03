"""Nginx at the edge: the only container with published ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

from components.container_service import (
    ConfigFile,
    ContainerService,
    ContainerServiceArgs,
    Healthcheck,
    Placement,
    PublishedPort,
    VolumeMount,
    named_volume,
)
from configs import nginx
from settings import Limits

SERVICE = "nginx"
USER = "101:101"  # the image's nginx user


@dataclass
class EdgeProxyArgs:
    placement: Placement
    image: str
    limits: Limits
    edge_network: pulumi.Input[str]
    config: nginx.EdgeConfig
    bind_address: str  # 127.0.0.1 on dev; 0.0.0.0 on EC2, where the security group narrows it
    cert_pem: pulumi.Input[str]
    key_pem: pulumi.Output[str]
    client_ca_pem: pulumi.Input[str] | None = None
    depends_on: Sequence[pulumi.Resource] = ()


class EdgeProxy(pulumi.ComponentResource):
    service: ContainerService
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: EdgeProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:EdgeProxy", name, None, opts)
        if args.config.client_ca != (args.client_ca_pem is not None):
            raise ValueError("client_ca in the nginx config and client_ca_pem must go together")
        cache = named_volume(f"{name}-cache", f"{args.placement.name_prefix}-nginx-cache", args.placement.labels, self)
        files = [
            ConfigFile(nginx.CONF_PATH, nginx.render(args.config)),
            ConfigFile(f"{nginx.TLS_DIR}/origin.crt", args.cert_pem),
            ConfigFile(f"{nginx.TLS_DIR}/origin.key", args.key_pem, mode="0400", secret=True),
        ]
        if args.client_ca_pem is not None:
            files.append(ConfigFile(f"{nginx.TLS_DIR}/origin-pull-ca.crt", args.client_ca_pem))
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.of(SERVICE, args, [args.edge_network], USER),
            command=["nginx", "-c", nginx.CONF_PATH, "-g", "daemon off;"],
            env={"NGINX_ENTRYPOINT_QUIET_LOGS": "1"},
            files=files,
            # The image's /var/cache/nginx belongs to its nginx user; a new volume keeps that.
            volumes=[VolumeMount(cache.name, nginx.CACHE_DIR)],
            tmpfs={"/tmp": "rw,noexec,nosuid,size=64m,mode=1777"},
            healthcheck=Healthcheck(
                ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{nginx.HEALTH_PORT}/healthz"],
                start_period="20s"),
            ports=[PublishedPort(nginx.HTTP_PORT, 80, args.bind_address),
                   PublishedPort(nginx.HTTPS_PORT, 443, args.bind_address)],
            opt_outs=frozenset({"publishes-port"}),
            depends_on=list(args.depends_on),
        ), opts=pulumi.ResourceOptions(parent=self))
        self.ready = list(self.service.containers)
        self.register_outputs({})
