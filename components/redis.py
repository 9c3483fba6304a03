"""Redis 7: one container on the internal data network, AOF and RDB on a named volume."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ConfigFile,
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    Healthcheck,
    VolumeMount,
    named_volume,
    scratch,
)
from configs import redis as rc
from settings import Limits

SERVICE = "redis"
# The official alpine image's redis user and group.
USER = f"999:{rc.GROUP}"


@dataclass
class RedisArgs:
    runtime: DockerRuntime
    image: str
    limits: Limits
    data_network: pulumi.Input[str]
    password: pulumi.Output[str]
    protect_data: bool
    # The container too (production, unless allowDataReplacement): a replacement stops the server.
    protect_container: bool = False


class Redis(pulumi.ComponentResource):
    host: str = SERVICE
    service: ContainerService
    volume: docker.Volume
    # Dependents wait for these: the server is up and passes its health check.
    ready: list[pulumi.Resource]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Redis", name, None, opts)
        self.volume = named_volume(f"{name}-data", f"{args.runtime.name_prefix}-redis-data", args.runtime.labels,
                                   self, keep=args.protect_data)
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.of(SERVICE, args, [args.data_network], USER),
            entrypoint=rc.ENTRYPOINT,
            command=["redis-server", f"{rc.CONFIG_DIR}/redis.conf"],
            files=[
                ConfigFile(f"{rc.CONFIG_DIR}/redis.conf", rc.redis_conf(args.limits.memory_mb)),
                # Only a hash of the password; still treated as secret material.
                ConfigFile(rc.ACL_FILE, args.password.apply(rc.acl_file), mode="0400", secret=True),
                ConfigFile(rc.PASSWORD_FILE, args.password, mode="0400", secret=True),
            ],
            volumes=[VolumeMount(self.volume.name, rc.DATA_DIR)],
            tmpfs={"/tmp": scratch(16)},
            healthcheck=Healthcheck(rc.healthcheck(), start_period="30s"),
            stop_timeout=60,
            protect=args.protect_container,
        ), opts=pulumi.ResourceOptions(parent=self))
        self.url = pulumi.Output.secret(args.password.apply(lambda p: rc.redis_url(p, SERVICE)))
        self.ready = list(self.service.containers)
        self.register_outputs({})
