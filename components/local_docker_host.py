"""dev: the Docker engine on this machine."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.host_commands import LocalCommands, registry_auth
from settings import Registry

# The endpoint the docker CLI would use (DOCKER_HOST, else DOCKER_CONTEXT, else its current
# context), whether it carries TLS material, and whether DOCKER_HOST and DOCKER_CONTEXT are both
# set. Asked of the CLI itself, which the one-shot tasks need anyway; a missing CLI fails the
# preview here with the shell's "docker: not found".
CLI_ENDPOINT = ("docker context inspect --format '{{.Endpoints.docker.Host}}{{if .TLSMaterial}} tls{{end}}'"
                ' && if [ -n "${DOCKER_HOST:-}" ] && [ -n "${DOCKER_CONTEXT:-}" ]; then echo both; fi')


def endpoint_from(answer: str, stack: str) -> str:
    """The CLI's answer to CLI_ENDPOINT, as one endpoint for the provider and the CLI; what cannot
    be handed to both is refused, naming the setting that fixes it."""
    lines = answer.strip().splitlines()
    host, _, tls = (lines[0] if lines else "").partition(" ")
    where = f"storiesofsoftware:dockerHost on stack {stack}"
    if not host:
        raise ValueError(f"{where}: the docker CLI named no endpoint; set dockerHost")
    if "both" in lines[1:]:
        # The provider lets DOCKER_CONTEXT override its host, the CLI lets DOCKER_HOST win.
        raise ValueError(f"{where}: DOCKER_HOST and DOCKER_CONTEXT are both set, and the provider and the "
                         "docker CLI would follow different ones; unset one of them")
    if tls:
        raise ValueError(f"{where}: the docker CLI's context reaches {host} with TLS certificates that "
                         "cannot be handed to the provider; set dockerHost to it and export DOCKER_TLS_VERIFY=1 "
                         "and DOCKER_CERT_PATH, which the provider and the CLI both read")
    return host


@dataclass
class LocalDockerHostArgs:
    docker_host: str  # empty: the docker CLI's endpoint
    stack: str
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
                opts=pulumi.InvokeOutputOptions(parent=self)).stdout.apply(lambda out: endpoint_from(out, args.stack))
        # An explicit provider, so no resource ever falls back to an ambient default.
        self.provider = docker.Provider(
            f"{name}-docker",
            host=self.endpoint,
            registry_auth=registry_auth(args.registry),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.commands = LocalCommands(self.endpoint)
        self.register_outputs({})
