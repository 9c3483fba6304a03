"""dev: the Docker engine on this machine."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.host_commands import LocalCommands, registry_auth
from settings import Registry


@dataclass
class LocalDockerHostArgs:
    docker_host: str  # empty: DOCKER_HOST or the platform's default socket
    registry: Registry | None = None


class LocalDockerHost(pulumi.ComponentResource):
    provider: docker.Provider
    commands: LocalCommands

    def __init__(self, name: str, args: LocalDockerHostArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:LocalDockerHost", name, None, opts)
        # An explicit provider, so no resource ever falls back to an ambient default.
        self.provider = docker.Provider(
            f"{name}-docker",
            host=args.docker_host or None,
            registry_auth=registry_auth(args.registry),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.commands = LocalCommands(args.docker_host)
        self.register_outputs({})
