"""The two Docker networks every stack has."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker


@dataclass
class ContainerNetworksArgs:
    name_prefix: str
    labels: dict[str, str]
    # staging/production: PostgreSQL and the backup container reach S3 through it.
    with_egress: bool = False
    # dev: a fixed subnet, so the address the host's own connections arrive from is known.
    # None: the engine picks one (the EC2 host, where nothing else runs).
    edge_subnet: str | None = None


class ContainerNetworks(pulumi.ComponentResource):
    """`edge`: what the proxy reaches and what may reach the internet.
    `data`: `internal: true`, so Docker gives it no route out and publishes nothing from it;
    databases live only here and cannot be reached from outside the host.
    `egress` (cloud only): a route out for backups to S3 and nothing else; only PostgreSQL
    (archive_command) and the backup container join it, and no other container can reach
    them through it."""

    edge: docker.Network
    data: docker.Network
    egress: docker.Network | None
    # Where connections from the Docker host itself arrive on the edge network, when known: a
    # published port is served by docker-proxy (or, without it, NATed), which dials the container
    # from the bridge's gateway, so nginx sees that address, not 127.0.0.1.
    host_gateway: str | None

    def __init__(self, name: str, args: ContainerNetworksArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ContainerNetworks", name, None, opts)
        labels = [docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(args.labels.items())]
        # Named networks clash with themselves on create-before-delete, hence delete first.
        child = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        ipam = []
        self.host_gateway = None
        if args.edge_subnet:
            subnet = ipaddress.ip_network(args.edge_subnet)
            self.host_gateway = str(next(subnet.hosts()))
            ipam = [docker.NetworkIpamConfigArgs(subnet=str(subnet), gateway=self.host_gateway)]
        self.edge = docker.Network(
            f"{name}-edge", name=f"{args.name_prefix}-edge", driver="bridge",
            internal=False, attachable=False, labels=labels, ipam_configs=ipam or None, opts=child,
        )
        self.data = docker.Network(
            f"{name}-data", name=f"{args.name_prefix}-data", driver="bridge",
            internal=True, attachable=False, labels=labels, opts=child,
        )
        self.egress = None
        if args.with_egress:
            self.egress = docker.Network(
                f"{name}-egress", name=f"{args.name_prefix}-egress", driver="bridge",
                internal=False, attachable=False, labels=labels,
                # No traffic between the containers on it: each only talks out.
                options={"com.docker.network.bridge.enable_icc": "false"}, opts=child,
            )
        self.register_outputs({})
