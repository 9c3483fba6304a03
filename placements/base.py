"""What the composition needs from where the platform runs (Placement), and what a Docker
placement needs from its engine (DockerEngine)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi
import pulumi_docker as docker

from components.backups import OffsiteTarget
from components.container_networks import ContainerNetworks
from components.container_service import DockerRuntime
from components.platform_secrets import PlatformSecrets
from components.postgres import ArchiveArgs
from services.spec import ObjectStore, ServiceSpec, StepSpec, Wiring
from settings import Settings


@dataclass(frozen=True)
class TlsMaterial:
    """What the edge serves and whom it asks for a client certificate."""

    cert_pem: pulumi.Input[str]
    key_pem: pulumi.Output[str]
    client_ca_pem: pulumi.Input[str] | None
    # Host name -> when its certificate expires (for the expiry alerts).
    expiries: pulumi.Output[Mapping[str, str]]


@dataclass(frozen=True)
class AccessKeyAges:
    """The placement's static access keys: "<identity>/<slot>" -> when each was created, and the
    rotation period they keep to (for the key-age alert). None on dev (MinIO's own keys)."""

    created: pulumi.Input[Mapping[str, str]]
    rotation_days: int


@dataclass
class Running:
    """A service as a placement runs it: the addresses the edge proxies to, what waits for it to be
    ready, and where Prometheus scrapes it (Docker's stable aliases; none on the cluster)."""

    upstreams: list[pulumi.Input[str]]
    ready: list[pulumi.Resource]
    scrape_targets: list[str] = field(default_factory=list)

    def by_name(self) -> str:
        """Its one address by name (a Docker network alias, a Cloud Map name): known before
        deploy, so a configuration can be rendered with it."""
        (address,) = self.upstreams
        if not isinstance(address, str):
            raise TypeError(f"{address!r}: an address known only at deploy time")
        return address


def needs_ready(spec: ServiceSpec, ready: Mapping[str, Sequence[pulumi.Resource]]) -> list[pulumi.Resource]:
    """What the data stores the spec needs have to be ready with (`ready`: store -> resources),
    in DATA_STORES order."""
    return [r for need in ("database", "cache", "storage") if need in spec.needs for r in ready[need]]


def check_steps(spec: ServiceSpec, steps: Sequence[StepSpec]) -> None:
    """A step takes its secrets from the service it runs before: the same owner, keys it has."""
    owner = spec.family or spec.name
    for step in steps:
        if step.secrets and step.owner != owner:
            raise ValueError(f"{step.name}: its secrets are {step.owner!r}'s, but it runs before {owner!r}")
        missing = set(step.secrets) - set(spec.secrets)
        if missing:
            raise ValueError(f"{step.name}: {sorted(missing)} are not among {owner!r}'s secrets")


class Placement(Protocol):
    """The one seam between the composition (composition/) and where the platform runs: the
    local Docker engine (dev), an EC2 Docker host, or ECS Fargate (`storiesofsoftware:placement`).
    Built, it has its ground: providers, network, object storage, the data stores."""

    # Where the services find storage, the databases and each other.
    wiring: Wiring

    def run_service(self, spec: ServiceSpec, steps: Sequence[StepSpec] = (),
                    after: Sequence[Running] = ()) -> Running:
        """Run a service after its steps, each after the one before, and after `after`. The
        steps wait at least for the database (on Docker for every store the service needs); the
        service for its last step and the stores it `needs`."""
        ...

    def run_edge(self, spec: ServiceSpec, api: Running, frontend: Running,
                 n8n: Mapping[str, Running]) -> Running:
        """The edge in front of the API, the frontend and n8n's processes (by name; none when
        n8n is off)."""
        ...

    def observe(self) -> None:
        """Metrics and alerts over what it runs (Prometheus and Grafana, or CloudWatch alarms)."""
        ...

    def outputs(self) -> Mapping[str, pulumi.Input[str]]:
        """The placement's own stack outputs (composition/outputs.py lists the rest as absent)."""
        ...

    # Where Grafana is reached, when it runs.
    grafana_url: str | None


class DockerEngine(Protocol):
    """What a Docker placement (placements/docker.py) stands on: the local engine (dev) or an EC2
    host (staging, production with `placement: host`)."""

    def __init__(self, cfg: Settings, secrets: PlatformSecrets, hostnames: Sequence[str]) -> None: ...

    # The container runtime: its Docker provider, and naming, labels and commands for services.
    provider: docker.Provider
    runtime: DockerRuntime
    tls: TlsMaterial
    # Who may be believed about the client's address (Cloudflare's ranges), and where the edge
    # publishes its ports.
    real_ip_from: Sequence[str]
    bind_address: str
    # staging/production need a network with a route out for archiving and shipping.
    needs_egress: bool
    hsts_max_age: int
    access_keys: AccessKeyAges

    def object_storage(self, networks: ContainerNetworks) -> ObjectStore: ...

    def stores_ready(self) -> list[pulumi.Resource]:
        """What the applications wait for besides the databases (dev: MinIO's buckets)."""
        ...

    def archive(self, networks: ContainerNetworks) -> ArchiveArgs: ...

    def offsite(self) -> OffsiteTarget: ...

    def backup_extra_volume(self) -> pulumi.Input[str] | None:
        """A volume the backup container snapshots besides the databases (dev: MinIO's)."""
        ...

    def outputs(self) -> Mapping[str, pulumi.Input[str]]: ...
