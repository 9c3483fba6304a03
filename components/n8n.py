"""n8n on Docker (services/n8n.py): one process, its home on a volume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    VolumeMount,
    named_volume,
)
from configs.n8n import DATA_DIR
from services.spec import ServiceSpec


@dataclass
class N8nArgs:
    runtime: DockerRuntime
    spec: ServiceSpec
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    protect_data: bool
    depends_on: Sequence[pulumi.Resource] = ()


class N8n(pulumi.ComponentResource):
    service: ContainerService
    volume: docker.Volume
    ready: list[pulumi.Resource]
    upstream: str

    def __init__(self, name: str, args: N8nArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:N8n", name, None, opts)
        spec = args.spec
        volume = named_volume(f"{name}-data", f"{args.runtime.name_prefix}-n8n-data", args.runtime.labels, self,
                              keep=args.protect_data)
        self.service = ContainerService(f"{name}-svc", replace(
            # edge: the proxy reaches the editor and webhooks, and workflows reach the internet.
            ContainerServiceArgs.from_spec(spec, args.runtime, [args.edge_network, args.data_network]),
            volumes=[VolumeMount(volume.name, DATA_DIR)],
            depends_on=list(args.depends_on),
        ), opts=pulumi.ResourceOptions(parent=self))
        self.volume = volume
        self.ready = list(self.service.containers)
        self.upstream = f"{spec.name}:{spec.port}"
        self.register_outputs({})
