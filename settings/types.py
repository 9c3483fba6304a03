"""The typed, immutable settings a program run gets, and the errors validation raises."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pulumi

PROJECT = "storiesofsoftware"
STACKS = ("dev", "staging", "production")
CLOUD_STACKS = ("staging", "production")
# A developer's own stack beside the shared ones: `dev-<name>`, with dev's defaults and rules.
# Short enough that every Docker name it prefixes (`sos-dev-<name>-...`) stays readable.
DEV_STACK = re.compile(r"dev-[a-z0-9]+(?:-[a-z0-9]+)*")
DEV_STACK_MAX = 32


def stack_kind(stack: str) -> str | None:
    """The stack whose defaults and rules a stack takes: itself, or dev for `dev-<name>`; None
    for any other name."""
    if stack in STACKS:
        return stack
    if DEV_STACK.fullmatch(stack) and len(stack) <= DEV_STACK_MAX:
        return "dev"
    return None


class ConfigError(pulumi.RunError):
    """Raised before any resource is registered. `pulumi.RunError` prints without a traceback."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        lines = [f"invalid configuration for stack {stack!r} ({len(problems)} problem(s)):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


class Invalid(ValueError):  # noqa: N818 (reads as "raise Invalid(expected ...)")
    """A parser's complaint: what was expected (the caller adds key, stack and given value).
    Inside an object, `path` names the field (`tasks.api.min`) and `given` its own value, so
    the message shows that value and not the whole merged object."""

    NOTHING: Any = object()

    def __init__(self, expected: str, path: str = "", given: Any = NOTHING) -> None:
        super().__init__(expected)
        self.path, self.given = path, given

    def at(self, key: str) -> str:
        """The full name of what was wrong: `key`, or `key.field.subfield`."""
        return f"{key}.{self.path}" if self.path else key

    def value(self, whole: Any) -> Any:
        """The value that was wrong: the field's own when known, else the whole value."""
        return whole if self.given is Invalid.NOTHING else self.given


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    cpus: float
    pids: int


@dataclass(frozen=True)
class Features:
    n8n: bool
    monitoring: bool
    # Prometheus scrapes the API's and the frontend's /metrics (their images expose it).
    app_metrics: bool = True


@dataclass(frozen=True)
class EdgePorts:
    """The host ports the edge publishes. Cloudflare reaches the cloud stacks on 80/443 only;
    dev may move them off ports another program holds or a rootless engine may not bind."""

    http: int = 80
    https: int = 443


@dataclass(frozen=True)
class TaskBounds:
    minimum: int
    maximum: int


@dataclass(frozen=True)
class ClusterSizes:
    """What the cluster placement runs on (settings `cluster`): the managed data services'
    sizes and each autoscaled service's task bounds."""

    database_class: str
    database_storage_gb: int
    cache_node_type: str
    tasks: Mapping[str, TaskBounds]


@dataclass(frozen=True)
class AwsSettings:
    """staging and production, on either AWS placement: the region, the Cloudflare zone in
    front, and how long the buckets keep what they keep."""

    region: str
    cloudflare_zone: str
    noncurrent_version_days: int
    log_retention_days: int
    # How often the host's static keys are replaced (the cluster's tasks sign with task roles).
    access_key_rotation_days: int


@dataclass(frozen=True)
class HostSizes:
    """The EC2 Docker host (`placement: host`)."""

    instance_type: str
    root_volume_gb: int
    data_volume_gb: int
    snapshot_retention_days: int


@dataclass(frozen=True)
class LocalSettings:
    """dev's Docker engine."""

    # Empty: the docker CLI's own endpoint (DOCKER_HOST, else its current context).
    docker_host: str
    edge_subnet: str


@dataclass(frozen=True)
class Registry:
    server: str
    username: str
    token: pulumi.Output[str] | None


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    domain: str
    api_replicas: int
    frontend_replicas: int
    images: Mapping[str, str]
    limits: Mapping[str, Limits]
    admin_cidrs: tuple[str, ...]
    backup_retention_days: int
    metrics_retention_days: int
    features: Features
    rollout_batch: int
    drain_seconds: int
    allow_data_replacement: bool
    registry: Registry | None
    # `host` (one EC2 Docker host) or `cluster` (ECS Fargate, RDS, ElastiCache); dev: `local`.
    placement: str = "local"
    # Each placement's own settings, None where they do not apply: AWS's on staging and
    # production, the host's or the cluster's by `placement`, the local engine's on dev.
    aws: AwsSettings | None = None
    host: HostSizes | None = None
    cluster: ClusterSizes | None = None
    local: LocalSettings | None = None
    edge_ports: EdgePorts = EdgePorts()
    external_secrets: Mapping[str, pulumi.Output[str] | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # Secret name -> generation (settings `secretGenerations`); absent names are at 0.
    secret_generations: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    # The day this run plans for: which access keys are due (configs/key_rotation.py).
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())

    @property
    def kind(self) -> str:
        """dev, staging or production: `dev-<name>` is a dev."""
        kind = stack_kind(self.stack)
        if kind is None:
            raise ValueError(f"stack {self.stack!r}: not dev, staging, production or dev-<name>")
        return kind

    @property
    def is_cloud(self) -> bool:
        """staging and production run on AWS (an EC2 Docker host, or ECS with `placement:
        cluster`); dev on the local Docker engine."""
        return self.kind in CLOUD_STACKS

    @property
    def on_cluster(self) -> bool:
        return self.placement == "cluster"

    @property
    def is_production(self) -> bool:
        return self.kind == "production"

    @property
    def manages_zone(self) -> bool:
        """Zone-wide Cloudflare settings belong to the stack at the zone apex."""
        return self.aws is not None and self.domain == self.aws.cloudflare_zone

    @property
    def name_prefix(self) -> str:
        """Prefix for names that must be unique on a shared engine or account."""
        return f"sos-{self.stack}"

    @property
    def labels(self) -> dict[str, str]:
        return {"project": self.project, "stack": self.stack, "managed-by": "pulumi"}

    def hostname(self, sub: str = "") -> str:
        return f"{sub}.{self.domain}" if sub else self.domain

    def origin(self, sub: str = "") -> str:
        """What a browser has in its address bar for a host: the port too, unless it is 443."""
        port = self.edge_ports.https
        return f"https://{self.hostname(sub)}" + ("" if port == 443 else f":{port}")
