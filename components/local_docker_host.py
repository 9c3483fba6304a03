"""dev: the Docker engine on this machine."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.host_commands import LocalCommands, registry_auth
from settings import Registry

# The endpoint the docker CLI would use (DOCKER_HOST, else DOCKER_CONTEXT, else its current
# context). Asked of the CLI itself, which the one-shot tasks need anyway; a missing CLI fails
# the preview here with the shell's "docker: not found".
CLI_ENDPOINT = "docker context inspect --format '{{.Endpoints.docker.Host}}'"


@dataclass
class LocalDockerHostArgs:
    docker_host: str  # empty: the docker CLI's endpoint
    registry: Registry | None = None


class LocalDockerHost(pulumi.ComponentResource):
    """The provider and the docker CLI of the one-shot tasks reach one engine, named once.

    Left to themselves they can differ: the provider reads DOCKER_HOST (or DOCKER_CONTEXT) and
    otherwise dials the default socket, while the CLI also follows its current context (Docker
    Desktop, Colima or OrbStack beside another engine). So the endpoint is resolved once, from
    `dockerHost` or else the CLI's own answer, and given to both (DOCKER_HOST outranks any
    context for the CLI)."""

    provider: docker.Provider
    commands: LocalCommands
    endpoint: pulumi.Output[str]

    def __init__(self, name: str, args: LocalDockerHostArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:LocalDockerHost", name, None, opts)
        if args.docker_host:
            self.endpoint = pulumi.Output.from_input(args.docker_host)
        else:
            self.endpoint = command.local.run_output(
                command=CLI_ENDPOINT, interpreter=["/bin/sh", "-c"],
                opts=pulumi.InvokeOutputOptions(parent=self)).stdout.apply(lambda out: out.strip())
        # An explicit provider, so no resource ever falls back to an ambient default.
        self.provider = docker.Provider(
            f"{name}-docker",
            host=self.endpoint,
            registry_auth=registry_auth(args.registry),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.commands = LocalCommands(self.endpoint)
        self.register_outputs({})
