"""dev: the Docker engine on this machine."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from components.host_commands import LocalCommands, registry_auth
from configs.file_bundle import DOCKER_SCRIPTS
from settings import PROJECT, EdgePorts, Registry

PREFLIGHT = (DOCKER_SCRIPTS / "preflight.sh").read_text()

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


# "127.0.0.1:80->8080/tcp, :::443->8443/tcp" or "[::]:443->8443/tcp" (`docker ps`, older and
# newer CLIs), ranges as 8000-8010->8000-8010/tcp.
_PUBLISHED = re.compile(r"(\S*?):(\d+)(?:-(\d+))?->[\d-]+/(tcp|udp|sctp)")
# Addresses that hold an IPv4 loopback port too. `[::]` is not among them: `ss` shows a
# dual-stack socket as `*`, and `[::]` only for one bound to IPv6 alone.
_ANY_ADDRESS = {"", "*", "0.0.0.0"}


def _port_of(address: str) -> tuple[str, int] | None:
    """`ss`'s 127.0.0.1:80 and [::]:80, netstat's (macOS) 127.0.0.1.80 and *.80."""
    host, sep, port = address.rpartition(":") if ":" in address else address.rpartition(".")
    return (host, int(port)) if sep and port.isdigit() else None


def _clashes(address: str, bind: str) -> bool:
    return address in _ANY_ADDRESS or address in (bind, f"[::ffff:{bind}]")


@dataclass
class Preflight:
    """What dev's engine and this machine hold before anything is created (preflight.sh)."""

    project: str
    stack: str
    ports: EdgePorts
    bind: str
    subnet: str
    # The edge container's name: on a second `up` it holds the ports, and is replaced first.
    edge_container: str = ""
    warnings: list[str] = field(default_factory=list)

    def verdict(self, answer: str) -> list[str]:
        """Refusals (each naming the setting that fixes it, as a ValueError), else warnings."""
        facts: dict[str, list[list[str]]] = {}
        for line in answer.splitlines():
            kind, *fields = line.split("\t")
            facts.setdefault(kind, []).append(fields)
        engine = (facts.get("engine") or [["", "", ""]])[0] + ["", "", ""]
        rootless = "name=rootless" in engine[2]
        # The engine runs on this machine's kernel (not in Docker Desktop's, Colima's or Lima's VM).
        local = engine[0] == engine[1]
        problems = [*self._ports(facts, rootless and local), *self._subnet(facts, local and not rootless)]
        if problems:
            raise ValueError("\n".join(problems))
        return self.warnings

    def _where(self, key: str) -> str:
        return f"{PROJECT}:{key} on stack {self.stack}"

    def _ports(self, facts: dict[str, list[list[str]]], rootless_here: bool) -> list[str]:
        problems = []
        moved = 'set edgePorts, for example {"http": 8080, "https": 8443}'
        start = facts.get("unprivileged_port_start")
        for key, port in (("edgePorts.http", self.ports.http), ("edgePorts.https", self.ports.https)):
            publishers = {row[0] for row in facts.get("container", []) for match in _PUBLISHED.finditer(row[3])
                          if match[4] == "tcp" and _clashes(match[1], self.bind)
                          and int(match[2]) <= port <= int(match[3] or match[2])}
            if others := publishers - {self.edge_container}:
                problems.append(f"{self._where(key)}: {self.bind}:{port} is published by container "
                                f"{', '.join(sorted(others))}; stop it or {moved}")
            elif not publishers and any((found := _port_of(row[0])) and found[1] == port and _clashes(found[0], self.bind)
                                        for row in facts.get("listen", [])):
                problems.append(f"{self._where(key)}: {self.bind}:{port} is taken by a program on this "
                                f"machine that is not a container; stop it or {moved}")
            # A warning only: `setcap cap_net_bind_service=ep` on rootlesskit allows low ports
            # too, and cannot be seen from here.
            if rootless_here and start and port < int(start[0][0]):
                self.warnings.append(f"{self._where(key)}: a rootless Docker engine may publish port {port} "
                                     f"only if rootlesskit has cap_net_bind_service (the sysctl "
                                     f"net.ipv4.ip_unprivileged_port_start is {start[0][0]}); if the edge fails "
                                     f"with \"permission denied\", {moved}")
        return problems

    def _subnet(self, facts: dict[str, list[list[str]]], shares_routes: bool) -> list[str]:
        if not self.subnet:
            return []
        subnet = ipaddress.ip_network(self.subnet)
        problems = []
        bridges = {"docker0"}
        for name, project, stack, network_id, subnets in facts.get("network", []):
            bridges.add(f"br-{network_id[:12]}")
            if (project, stack) == (self.project, self.stack):
                continue
            for other in subnets.split():
                if ipaddress.ip_network(other).overlaps(subnet):
                    problems.append(f"{self._where('edgeSubnet')}: {subnet} overlaps Docker network {name} "
                                    f"({other}); pick a free block, such as 10.214.0.0/24")
        # A rootless engine's bridges live in their own network namespace, a Docker Desktop's in
        # its VM: only an engine on this machine's kernel shares its routes.
        if not shares_routes:
            return problems
        for destination, interface in facts.get("route", []):
            try:
                route = ipaddress.ip_network(destination, strict=False)
            except ValueError:  # `default`, or a route type this parser does not know
                continue
            if interface in bridges:
                continue
            # Full-tunnel VPNs route 0.0.0.0/1 and 128.0.0.0/1: any more specific route wins.
            if route.version != 4 or route.prefixlen < 8 or not route.overlaps(subnet):
                continue
            if route.prefixlen >= subnet.prefixlen:
                problems.append(f"{self._where('edgeSubnet')}: this machine already routes {route} "
                                f"(via {interface}) inside {subnet}; the edge network would take "
                                "those addresses. Pick a free block, such as 10.214.0.0/24")
            else:
                self.warnings.append(f"{self._where('edgeSubnet')}: while dev runs, {subnet} is the edge "
                                     f"network's, not part of {route} via {interface} (a VPN or LAN "
                                     "route); pick another block if you reach hosts there")
        return problems


@dataclass
class LocalDockerHostArgs:
    docker_host: str  # empty: the docker CLI's endpoint
    stack: str
    registry: Registry | None = None
    # What the edge will publish on and its network's block, checked before anything is created.
    edge_ports: EdgePorts = EdgePorts()
    bind_address: str = "127.0.0.1"
    edge_subnet: str = ""
    project: str = PROJECT  # the `project` label of this stack's networks
    edge_container: str = ""  # the name of the container that publishes edge_ports


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
            endpoint = pulumi.Output.from_input(args.docker_host)
        else:
            endpoint = command.local.run_output(
                command=CLI_ENDPOINT, interpreter=["/bin/sh", "-c"],
                opts=pulumi.InvokeOutputOptions(parent=self)).stdout.apply(lambda out: endpoint_from(out, args.stack))
        # Ports another program holds, a rootless engine's privileged ports and a subnet that
        # clashes are refused here, before the provider (so any resource) can exist: Docker
        # itself would stop the up half-way, at the edge, with "port is already allocated".
        preflight = Preflight(args.project, args.stack, args.edge_ports, args.bind_address, args.edge_subnet,
                              args.edge_container)
        answer = command.local.run_output(
            command=PREFLIGHT, interpreter=["/bin/sh", "-c"], environment={"DOCKER_HOST": endpoint},
            opts=pulumi.InvokeOutputOptions(parent=self)).stdout
        self.endpoint = pulumi.Output.all(endpoint, answer).apply(lambda both: _checked(both[0], preflight, both[1]))
        # An explicit provider, so no resource ever falls back to an ambient default.
        self.provider = docker.Provider(
            f"{name}-docker",
            host=self.endpoint,
            registry_auth=registry_auth(args.registry),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.commands = LocalCommands(self.endpoint)
        self.register_outputs({})


def _checked(endpoint: str, preflight: Preflight, answer: str) -> str:
    for warning in preflight.verdict(answer):
        pulumi.log.warn(warning)
    return endpoint
