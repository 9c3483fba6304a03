"""The Fastify API on Docker: its two steps (services/api.py), then N replicas behind the edge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

from components.container_service import ContainerService, ContainerServiceArgs, DockerRuntime
from components.one_shot_task import OneShotTask, OneShotTaskArgs
from services.spec import ServiceSpec, StepSpec


@dataclass
class ApiArgs:
    runtime: DockerRuntime
    spec: ServiceSpec
    # Run in order before the replicas (services/api.py: the migrations, then the indexes).
    steps: Sequence[StepSpec]
    replicas: int
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    rollout_batch: int = 1
    depends_on: Sequence[pulumi.Resource] = ()


class Api(pulumi.ComponentResource):
    service: ContainerService
    steps: list[OneShotTask]
    # What dependents wait for (every replica healthy).
    ready: list[pulumi.Resource]
    # The edge routes to the exact containers (`upstreams`, new names on each deploy); Prometheus
    # scrapes the stable per-replica aliases, so its configuration does not change on a deploy.
    upstreams: list[pulumi.Output[str]]
    scrape_targets: list[str]

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Api", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec, commands = args.spec, args.runtime.commands
        # Each runs on every new image (its trigger is the pulled image id) and after the step
        # before it; a failed step fails the deployment, and the replicas come only after all.
        self.steps = []
        for step in args.steps:
            before = self.steps[-1].run if self.steps else None
            self.steps.append(OneShotTask(step.name, OneShotTaskArgs.from_step(
                step, args.data_network, commands, spec.secrets,
                triggers=[before.id] if before else [],
                depends_on=[before] if before else list(args.depends_on)), opts=child))
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.from_spec(spec, args.runtime, [args.edge_network, args.data_network]),
            replicas=args.replicas,
            # Start-first deploys; an old replica gets SIGTERM and its stop timeout to drain.
            rolling=True,
            rollout_batch=args.rollout_batch,
            depends_on=[self.steps[-1].run] if self.steps else list(args.depends_on),
        ), opts=child)
        self.ready = list(self.service.containers)
        port = spec.port
        self.upstreams = [name.apply(lambda n: f"{n}:{port}") for name in self.service.names]
        self.scrape_targets = [f"{alias}:{port}" for alias in self.service.aliases]
        self.register_outputs({})
