"""The Next.js frontend on Docker (services/frontend.py): N replicas behind the edge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

from components.container_service import ContainerService, ContainerServiceArgs, DockerRuntime
from services.spec import ServiceSpec


@dataclass
class FrontendArgs:
    runtime: DockerRuntime
    spec: ServiceSpec
    replicas: int
    edge_network: pulumi.Input[str]
    rollout_batch: int = 1
    depends_on: Sequence[pulumi.Resource] = ()


class Frontend(pulumi.ComponentResource):
    service: ContainerService
    ready: list[pulumi.Resource]
    # The edge routes to the exact containers (`upstreams`, new names on each deploy); Prometheus
    # scrapes the stable per-replica aliases, so its configuration does not change on a deploy.
    upstreams: list[pulumi.Output[str]]
    scrape_targets: list[str]

    def __init__(self, name: str, args: FrontendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Frontend", name, None, opts)
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.from_spec(args.spec, args.runtime, [args.edge_network]),
            replicas=args.replicas,
            # Start-first deploys; an old replica gets SIGTERM and its stop timeout to drain.
            rolling=True,
            rollout_batch=args.rollout_batch,
            depends_on=list(args.depends_on),
        ), opts=pulumi.ResourceOptions(parent=self))
        self.ready = list(self.service.containers)
        port = args.spec.port
        self.upstreams = [name.apply(lambda n: f"{n}:{port}") for name in self.service.names]
        self.scrape_targets = [f"{alias}:{port}" for alias in self.service.aliases]
        self.register_outputs({})
