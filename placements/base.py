"""What the platform needs from where it runs, whatever that is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi
import pulumi_docker as docker

from components.backups import OffsiteTarget
from components.container_networks import ContainerNetworks
from components.container_service import DockerRuntime
from components.platform_secrets import PlatformSecrets
from components.postgres import ArchiveArgs
from services.spec import ObjectStore
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


class PlatformPlacement(Protocol):
    """One per placement: local Docker (dev), an EC2 Docker host (staging, production)."""

    def __init__(self, cfg: Settings, secrets: PlatformSecrets, hostnames: Sequence[str]) -> None: ...

    # The container runtime: its Docker provider, and naming, labels and commands for services.
    provider: docker.Provider
    services: DockerRuntime
    tls: TlsMaterial
    # Who may be believed about the client's address (Cloudflare's ranges), and where the edge
    # publishes its ports.
    real_ip_from: Sequence[str]
    bind_address: str
    # staging/production need a network with a route out for archiving and shipping.
    needs_egress: bool
    # dev runs MinIO, whose root password is one of the generated secrets.
    runs_minio: bool
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

    def outputs(self) -> Mapping[str, pulumi.Input[str]]:
        """The placement's own stack outputs (platforms/outputs.py lists the rest as absent)."""
        ...
