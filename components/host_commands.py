"""Running `docker` on the Docker host: locally for dev, over SSH for the EC2 host.

The Docker provider covers long-running containers. Two things it cannot do are done with the
docker CLI instead: one-shot tasks whose failure must fail the deployment (the provider records
an exit code but never fails on it), and a cgroup PID limit (pulumi-docker 5.2 has no
`pids_limit`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from settings import Registry


def registry_auth(registry: Registry | None) -> list[docker.ProviderRegistryAuthArgs] | None:
    """Credentials for a private registry, given to the Docker provider that pulls images."""
    if registry is None:
        return None
    return [docker.ProviderRegistryAuthArgs(address=registry.server, username=registry.username,
                                            password=registry.token)]


# A command's output is kept out of the update's log unless it says it prints no secret: a task's
# log may echo what it was given.
QUIET = "none"
# For a command whose messages are the point (nginx's own error for a refused configuration).
SHOWN = "stdoutAndStderr"


class CommandRunner(Protocol):
    def run(self, name: str, *, create: pulumi.Input[str], stdin: pulumi.Input[str] | None = None,
            triggers: Sequence[pulumi.Input[object]] | None = None, logging: str = QUIET,
            update: str | None = None, opts: pulumi.ResourceOptions | None = None) -> pulumi.CustomResource:
        """`update`: what runs when the script changes but the triggers do not (default: `create`
        again); new triggers replace the command, which runs `create`."""
        ...


class LocalCommands:
    """dev: the docker CLI on the operator's machine, against the same engine as the provider."""

    def __init__(self, docker_host: pulumi.Input[str]) -> None:
        # DOCKER_HOST outranks DOCKER_CONTEXT and the current context: the provider's engine.
        self.environment: Mapping[str, pulumi.Input[str]] = {"DOCKER_HOST": docker_host}

    def run(self, name: str, *, create: pulumi.Input[str], stdin: pulumi.Input[str] | None = None,
            triggers: Sequence[pulumi.Input[object]] | None = None, logging: str = QUIET,
            update: str | None = None, opts: pulumi.ResourceOptions | None = None) -> pulumi.CustomResource:
        return command.local.Command(
            name, create=create, update=update, stdin=stdin, triggers=list(triggers or []),
            environment=dict(self.environment), interpreter=["/bin/sh", "-c"],
            logging=logging, opts=opts)


class RemoteCommands:
    """staging/production: the docker CLI on the EC2 host, over the pinned SSH connection."""

    def __init__(self, connection: command.remote.ConnectionArgs) -> None:
        self.connection = connection

    def run(self, name: str, *, create: pulumi.Input[str], stdin: pulumi.Input[str] | None = None,
            triggers: Sequence[pulumi.Input[object]] | None = None, logging: str = QUIET,
            update: str | None = None, opts: pulumi.ResourceOptions | None = None) -> pulumi.CustomResource:
        return command.remote.Command(
            name, connection=self.connection, create=create, update=update, stdin=stdin,
            triggers=list(triggers or []), logging=logging, opts=opts)
