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
    migrate: StepSpec
    indexes: StepSpec
    replicas: int
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    rollout_batch: int = 1
    depends_on: Sequence[pulumi.Resource] = ()


class Api(pulumi.ComponentResource):
    service: ContainerService
    indexes: OneShotTask
    migration: OneShotTask
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
        # Runs on every new API image (its trigger is the pulled image id) and fails the
        # deployment when either step fails; replicas are created only after it succeeded.
        self.migration = OneShotTask(f"{name}-migrate", OneShotTaskArgs.from_step(
            args.migrate, args.data_network, commands, spec.secrets, depends_on=list(args.depends_on)), opts=child)
        self.indexes = OneShotTask(f"{name}-indexes", OneShotTaskArgs.from_step(
            args.indexes, args.data_network, commands, spec.secrets,
            triggers=[self.migration.run.id], depends_on=[self.migration.run]), opts=child)
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.from_spec(spec, args.runtime, [args.edge_network, args.data_network]),
            replicas=args.replicas,
            # Start-first deploys; an old replica gets SIGTERM and its stop timeout to drain.
            rolling=True,
            rollout_batch=args.rollout_batch,
            depends_on=[self.indexes.run],
        ), opts=child)
        self.ready = list(self.service.containers)
        port = spec.port
        self.upstreams = [name.apply(lambda n: f"{n}:{port}") for name in self.service.names]
        self.scrape_targets = [f"{alias}:{port}" for alias in self.service.aliases]
        self.register_outputs({})
