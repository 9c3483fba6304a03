"""The one place that reads `pulumi.Config`.

Every key of the `storiesofsoftware` namespace is declared once in `KEYS`, with its parser, its
default per stack and its documentation. `load()` reads the stack's config, validates all of it,
and either returns an immutable `Settings` or raises one `ConfigError` that lists every problem
(so an operator fixes a stack file in one pass, and nothing is registered before that).
Components receive `Settings`; they never read config themselves.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pulumi

from configs import images as image_routes
from configs.postgres import RDS_INSTANCE_MEMORY_MB
from settings.defaults import (
    CLOUD_LIMITS,
    DEFAULT_IMAGES,
    DEV_LIMITS,
    LIMITED_SERVICES,
    SERVICES,
)

PROJECT = "storiesofsoftware"
STACKS = ("dev", "staging", "production")
CLOUD_STACKS = ("staging", "production")

# External credentials: optional, and only ever read as config secrets.
EXTERNAL_SECRETS = (
    "sendgridApiKey",
    "stripeSecretKey",
    "stripeWebhookSecret",
    "mediumApiToken",
    "devtoApiKey",
    "registryToken",
)


# Plan as if on another day (a rehearsal of a key rotation); unset, today in UTC.
ROTATION_DATE_VARIABLE = "SOS_KEY_ROTATION_DATE"


class ConfigError(pulumi.RunError):
    """Raised before any resource is registered. `pulumi.RunError` prints without a traceback."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        lines = [f"invalid configuration for stack {stack!r} ({len(problems)} problem(s)):"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


class Invalid(ValueError):  # noqa: N818 (reads as "raise Invalid(expected ...)")
    """A parser's complaint: what was expected (the caller adds key, stack and given value)."""


# --------------------------------------------------------------------------------------------
# Typed, immutable settings
# --------------------------------------------------------------------------------------------


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
class Registry:
    server: str
    username: str
    token: pulumi.Output[str] | None


@dataclass(frozen=True)
class Settings:
    project: str
    stack: str
    domain: str
    cloudflare_zone: str
    aws_region: str
    instance_type: str
    root_volume_gb: int
    data_volume_gb: int
    api_replicas: int
    frontend_replicas: int
    images: Mapping[str, str]
    limits: Mapping[str, Limits]
    admin_cidrs: tuple[str, ...]
    backup_retention_days: int
    snapshot_retention_days: int
    noncurrent_version_days: int
    metrics_retention_days: int
    log_retention_days: int
    features: Features
    docker_host: str
    edge_subnet: str
    rollout_batch: int
    drain_seconds: int
    allow_data_replacement: bool
    access_key_rotation_days: int
    registry: Registry | None
    # `host` (one EC2 Docker host) or `cluster` (ECS Fargate, RDS, ElastiCache); dev: `local`.
    placement: str = "local"
    cluster: ClusterSizes | None = None
    edge_ports: EdgePorts = EdgePorts()
    external_secrets: Mapping[str, pulumi.Output[str] | None] = field(
        default_factory=lambda: MappingProxyType({})
    )
    # The day this run plans for: which access keys are due (configs/key_rotation.py).
    today: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())

    @property
    def is_cloud(self) -> bool:
        """staging and production run on AWS (an EC2 Docker host, or ECS with `placement:
        cluster`); dev on the local Docker engine."""
        return self.stack in CLOUD_STACKS

    @property
    def on_cluster(self) -> bool:
        return self.placement == "cluster"

    @property
    def is_production(self) -> bool:
        return self.stack == "production"

    @property
    def manages_zone(self) -> bool:
        """Zone-wide Cloudflare settings belong to the stack at the zone apex."""
        return self.is_cloud and self.domain == self.cloudflare_zone

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


# --------------------------------------------------------------------------------------------
# Parsers: raw config value -> typed value, or Invalid("expected ...")
# --------------------------------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def parse_domain(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise Invalid("a bare host name such as example.com")
    if "://" in raw or "/" in raw or ":" in raw or "?" in raw or "@" in raw:
        raise Invalid("a bare host name with no scheme, path or port, such as example.com")
    if raw != raw.lower() or raw.endswith("."):
        raise Invalid("a lower-case host name without a trailing dot")
    labels = raw.split(".")
    if len(raw) > 253 or not all(_LABEL.match(label) for label in labels):
        raise Invalid("a valid DNS host name (letters, digits and hyphens per label)")
    return raw


def parse_positive_int(raw: Any, minimum: int = 1, maximum: int = 1_000_000) -> int:
    if isinstance(raw, bool):
        raise Invalid(f"an integer from {minimum} to {maximum}")
    if isinstance(raw, str) and re.fullmatch(r"\d+", raw.strip()):
        raw = int(raw.strip())
    if not isinstance(raw, int) or not minimum <= raw <= maximum:
        raise Invalid(f"an integer from {minimum} to {maximum}")
    return raw


def int_between(minimum: int, maximum: int) -> Callable[[Any], int]:
    return lambda raw: parse_positive_int(raw, minimum, maximum)


def parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise Invalid("true or false")


def parse_cidr(raw: Any) -> str:
    if not isinstance(raw, str) or "/" not in raw:
        raise Invalid("a CIDR block such as 203.0.113.0/24")
    try:
        return str(ipaddress.ip_network(raw.strip(), strict=True))
    except ValueError as exc:
        raise Invalid(f"a CIDR block such as 203.0.113.0/24 ({exc})") from None


def parse_cidr_list(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise Invalid("a list of CIDR blocks") from None
    if not isinstance(raw, list):
        raise Invalid("a list of CIDR blocks")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(parse_cidr(item))
        except Invalid as exc:
            raise Invalid(f"item {i}: {exc}") from None
    return tuple(out)


# registry[:port]/path/name:tag[@sha256:digest]; the tag is mandatory, the digest optional.
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r":(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})(?:@sha256:[a-f0-9]{64})?$"
)


def parse_image(raw: Any) -> str:
    if not isinstance(raw, str):
        raise Invalid("an image reference with a version tag, such as redis:7.4.5-alpine")
    match = _IMAGE.match(raw)
    # A registry port looks like a tag ("host:5000/img"); the regex requires the tag last.
    if not match:
        raise Invalid("an image reference with a version tag, such as redis:7.4.5-alpine")
    if match.group("tag") == "latest":
        raise Invalid("a version tag, not 'latest' (it moves, so two deploys differ)")
    return raw


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt])(i?b?)?$", re.IGNORECASE)
_UNIT_MB = {"k": 1 / 1024, "m": 1, "g": 1024, "t": 1024 * 1024}


def parse_memory(raw: Any) -> int:
    """A memory size ('512m', '1Gi', '1.5g') as whole MiB; Docker takes MB for limits."""
    if not isinstance(raw, str):
        raise Invalid("a size with a unit, such as 512m or 1Gi")
    match = _SIZE.match(raw.strip())
    if not match:
        raise Invalid("a size with a unit, such as 512m or 1Gi")
    mb = float(match.group(1)) * _UNIT_MB[match.group(2).lower()]
    if mb < 6:
        raise Invalid("at least 6m (Docker's minimum memory limit)")
    return int(mb)


def parse_cpus(raw: Any) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise Invalid("a number of CPUs such as 0.5 or 2") from None
    if isinstance(raw, bool) or not 0.01 <= value <= 64:
        raise Invalid("a number of CPUs from 0.01 to 64")
    return value


def parse_region(raw: Any) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d", raw):
        raise Invalid("an AWS region such as eu-west-1")
    return raw


def parse_instance_type(raw: Any) -> str:
    if not isinstance(raw, str) or not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", raw):
        raise Invalid("an EC2 instance type such as t3.medium")
    return raw


def parse_docker_host(raw: Any) -> str:
    if not isinstance(raw, str) or (raw and not re.match(r"^(unix|tcp|ssh|npipe)://", raw)):
        raise Invalid("empty (the docker CLI's endpoint) or a unix://, tcp://, ssh:// or npipe:// URL")
    return raw


def parse_edge_subnet(raw: Any) -> str:
    cidr = parse_cidr(raw)
    network = ipaddress.ip_network(cidr)
    if network.version != 4 or not network.is_private or not 16 <= network.prefixlen <= 28:
        raise Invalid("a private IPv4 block from /16 to /28, such as 10.213.0.0/24")
    return cidr


def parse_edge_ports(raw: Any) -> EdgePorts:
    expected = "an object {\"http\": port, \"https\": port} of two different ports from 1 to 65535"
    if not isinstance(raw, dict) or set(raw) != {"http", "https"}:
        raise Invalid(expected)
    values = {}
    for name, value in raw.items():
        try:
            values[name] = parse_positive_int(value, 1, 65535)
        except Invalid as exc:
            raise Invalid(f"{name}: {exc}") from None
    ports = EdgePorts(**values)
    if ports.http == ports.https:
        raise Invalid(expected)
    return ports


def parse_registry(raw: Any) -> Mapping[str, str]:
    if raw in ("", None, {}):
        return MappingProxyType({})
    if not isinstance(raw, dict) or set(raw) != {"server", "username"}:
        raise Invalid("an object with exactly 'server' and 'username'")
    if not all(isinstance(v, str) and v for v in raw.values()):
        raise Invalid("non-empty strings for 'server' and 'username'")
    return MappingProxyType(dict(raw))


PLACEMENTS = ("host", "cluster")
# The cluster's autoscaled services (settings `cluster.tasks`): n8n's main and webhook processes
# run one task each; its workers scale.
CLUSTER_SERVICES = ("edge", "api", "frontend", "n8nWorker")
# The images the cluster's tasks run (`images.<key>`); the rest run on the Docker placements only.
CLUSTER_IMAGES = ("api", "frontend", "n8n", "nginx", "postgres")
# Instance classes whose memory the tuning rules know (components/managed_database.py).
DATABASE_CLASSES = tuple(RDS_INSTANCE_MEMORY_MB)


def parse_placement(raw: Any) -> str:
    if raw not in PLACEMENTS:
        raise Invalid(f"one of {', '.join(PLACEMENTS)}")
    return raw


def parse_task_bounds(raw: Any) -> TaskBounds:
    if not isinstance(raw, dict) or set(raw) != {"min", "max"}:
        raise Invalid("an object with exactly min and max")
    bounds = TaskBounds(_sub("min", int_between(1, 100), raw["min"]), _sub("max", int_between(1, 100), raw["max"]))
    if bounds.maximum < bounds.minimum:
        raise Invalid(f"max at least min (given min {bounds.minimum}, max {bounds.maximum})")
    return bounds


def parse_cluster(raw: Any) -> ClusterSizes:
    fields = {"databaseClass", "databaseStorageGb", "cacheNodeType", "tasks"}
    if not isinstance(raw, dict):
        raise Invalid(f"an object with {', '.join(sorted(fields))}")
    unknown = set(raw) - fields
    if unknown:
        raise Invalid(f"only {', '.join(sorted(fields))} (unknown: {', '.join(sorted(unknown))})")
    database_class = raw.get("databaseClass")
    if database_class not in DATABASE_CLASSES:
        raise Invalid(f"databaseClass: one of {', '.join(DATABASE_CLASSES)}")
    node_type = raw.get("cacheNodeType")
    if not isinstance(node_type, str) or not re.fullmatch(r"cache\.[a-z0-9]+\.[a-z0-9]+", node_type):
        raise Invalid("cacheNodeType: an ElastiCache node type such as cache.t4g.small")
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict) or set(tasks) - set(CLUSTER_SERVICES):
        raise Invalid(f"tasks: an object keyed by {', '.join(CLUSTER_SERVICES)}")
    return ClusterSizes(
        database_class=database_class,
        database_storage_gb=_sub("databaseStorageGb", int_between(20, 65536), raw.get("databaseStorageGb")),
        cache_node_type=node_type,
        tasks=MappingProxyType({name: _sub(f"tasks.{name}", parse_task_bounds, tasks.get(name))
                                for name in CLUSTER_SERVICES}),
    )


def _cluster_defaults(production: bool) -> dict[str, Any]:
    def bounds(minimum: int, maximum: int) -> dict[str, int]:
        return {"min": minimum, "max": maximum}

    if production:
        return {"databaseClass": "db.t4g.medium", "databaseStorageGb": 50, "cacheNodeType": "cache.t4g.small",
                "tasks": {"edge": bounds(2, 6), "api": bounds(2, 10), "frontend": bounds(2, 8),
                          "n8nWorker": bounds(1, 4)}}
    return {"databaseClass": "db.t4g.micro", "databaseStorageGb": 20, "cacheNodeType": "cache.t4g.micro",
            "tasks": {"edge": bounds(1, 2), "api": bounds(1, 2), "frontend": bounds(1, 2), "n8nWorker": bounds(1, 2)}}


@dataclass(frozen=True)
class ServiceMap:
    """A per-service object: keys limited to `names`, each value checked by `item`. A stack
    sets only the services it changes; the rest keep the stack's defaults."""

    item: Callable[[Any], Any]
    names: tuple[str, ...]


def parse_limits(raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise Invalid("an object with memory, cpus and pids")
    unknown = set(raw) - {"memory", "cpus", "pids"}
    if unknown:
        raise Invalid(f"only memory, cpus and pids (unknown: {', '.join(sorted(unknown))})")
    missing = {"memory", "cpus", "pids"} - set(raw)
    if missing:
        raise Invalid(f"memory, cpus and pids (missing: {', '.join(sorted(missing))})")
    return Limits(
        memory_mb=_sub("memory", parse_memory, raw["memory"]),
        cpus=_sub("cpus", parse_cpus, raw["cpus"]),
        pids=_sub("pids", int_between(16, 65536), raw["pids"]),
    )


def _sub(name: str, parse: Callable[[Any], Any], raw: Any) -> Any:
    try:
        return parse(raw)
    except Invalid as exc:
        raise Invalid(f"{name}: {exc}") from None


def parse_features(raw: Any) -> Features:
    if not isinstance(raw, dict):
        raise Invalid("an object with n8n, monitoring and appMetrics switches")
    unknown = set(raw) - {"n8n", "monitoring", "appMetrics"}
    if unknown:
        raise Invalid(f"only n8n, monitoring and appMetrics (unknown: {', '.join(sorted(unknown))})")
    return Features(
        n8n=_sub("n8n", parse_bool, raw.get("n8n", True)),
        monitoring=_sub("monitoring", parse_bool, raw.get("monitoring", True)),
        app_metrics=_sub("appMetrics", parse_bool, raw.get("appMetrics", True)),
    )


# --------------------------------------------------------------------------------------------
# The schema: one row per key, defaults per stack in raw (config) form
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    name: str
    parse: Callable[[Any], Any] | ServiceMap
    defaults: Mapping[str, Any]
    doc: str


def _per_stack(dev: Any, staging: Any, production: Any) -> Mapping[str, Any]:
    return MappingProxyType({"dev": dev, "staging": staging, "production": production})


def _all(value: Any) -> Mapping[str, Any]:
    return _per_stack(value, value, value)


KEYS: tuple[Key, ...] = (
    Key("domain", parse_domain,
        _per_stack("localhost", "staging.storiesofsoftware.com", "storiesofsoftware.com"),
        "Apex host name of the site; api., www., n8n. and grafana. hang below it."),
    Key("cloudflareZone", parse_domain, _per_stack(None, "storiesofsoftware.com", "storiesofsoftware.com"),
        "Cloudflare zone holding `domain`. The stack whose domain is the zone apex also manages "
        "the zone-wide TLS settings and cache rule."),
    Key("awsRegion", parse_region, _per_stack(None, "us-east-1", "us-east-1"),
        "AWS region of the Docker host and buckets."),
    Key("instanceType", parse_instance_type, _per_stack(None, "t3.medium", "t3.large"),
        "EC2 instance type of the Docker host."),
    Key("rootVolumeGb", int_between(8, 1024), _per_stack(None, 20, 30),
        "Size of the host's encrypted root volume (OS and images)."),
    Key("dataVolumeGb", int_between(10, 16384), _per_stack(None, 50, 100),
        "Size of the encrypted EBS volume that holds every Docker volume."),
    Key("apiReplicas", int_between(1, 20), _per_stack(1, 2, 3),
        "API containers behind the edge proxy (production needs at least 2)."),
    Key("frontendReplicas", int_between(1, 20), _per_stack(1, 2, 2),
        "Next.js containers behind the edge proxy."),
    Key("images", ServiceMap(parse_image, SERVICES), _all(DEFAULT_IMAGES),
        "Image per service, each pinned to a version tag (an @sha256 digest may follow). "
        "A stack sets only the services it changes, e.g. `images.api`."),
    Key("limits", ServiceMap(parse_limits, LIMITED_SERVICES), _per_stack(DEV_LIMITS, CLOUD_LIMITS, CLOUD_LIMITS),
        "Memory (`512m`, `1Gi`), CPUs and PIDs per service; a stack sets only what it changes."),
    Key("adminCidrs", parse_cidr_list, _per_stack(["127.0.0.1/32"], [], []),
        "Addresses allowed to SSH to the host and to reach the n8n editor and Grafana. "
        "Required on staging and production; 0.0.0.0/0 is refused."),
    Key("backupRetentionDays", int_between(1, 3650), _per_stack(7, 14, 35),
        "How long backups are kept."),
    Key("noncurrentVersionDays", int_between(1, 3650), _per_stack(None, 14, 35),
        "How long an overwritten or deleted object in the content and images buckets stays "
        "recoverable (S3 versioning); the backups bucket follows backupRetentionDays."),
    Key("snapshotRetentionDays", int_between(1, 1000), _per_stack(None, 7, 14),
        "How many daily EBS snapshots of the data volume are kept."),
    Key("metricsRetentionDays", int_between(1, 3650), _per_stack(7, 15, 30),
        "How long Prometheus keeps samples."),
    Key("logRetentionDays", int_between(1, 3650), _per_stack(None, 90, 365),
        "How long the log bucket keeps the S3 access logs of the other buckets and the VPC's "
        "flow logs (then a week as noncurrent versions)."),
    Key("features", parse_features, _all({"n8n": True, "monitoring": True, "appMetrics": True}),
        "Switches for optional parts of the platform."),
    Key("dockerHost", parse_docker_host, _per_stack("", None, None),
        "dev only: Docker engine URL; empty means the docker CLI's endpoint (DOCKER_HOST, else its "
        "current context), used by the provider and the CLI alike."),
    Key("edgeSubnet", parse_edge_subnet, _per_stack("10.213.0.0/24", None, None),
        "dev only: subnet of the edge network. A browser on the host reaches the published port "
        "through Docker's proxy and arrives from this network's gateway, which dev's n8n and "
        "Grafana admit. `pulumi preview` refuses a block that another Docker network or a route "
        "of this machine (a VPN, the home network) already covers."),
    Key("edgePorts", parse_edge_ports, _per_stack({"http": 80, "https": 443}, None, None),
        "dev only: the ports the edge publishes on 127.0.0.1. Move them (8080/8443) when another "
        "program holds 80/443 or a rootless engine may not bind ports under 1024; the site's "
        "URLs then carry the port. `pulumi preview` names whatever holds them."),
    Key("rolloutBatch", int_between(1, 20), _all(1),
        "New API or frontend replicas a deploy starts at a time; the edge switches to the new "
        "replicas once all are healthy, then the old ones drain. The host needs room for both."),
    Key("drainSeconds", int_between(1, 600), _all(30),
        "How long an old API or frontend replica has after SIGTERM to finish its requests "
        "before it is killed (see Deploying a new version in the README)."),
    Key("allowDataReplacement", parse_bool, _all(False),
        "production: PostgreSQL and Redis containers are protected, so a change that would "
        "replace one fails `pulumi up`; set true for the one deploy that means to."),
    Key("accessKeyRotationDays", int_between(2, 90), _per_stack(None, 90, 90),
        "Days between two new access keys of the same slot (the API's and the backup writer's "
        "keys, two slots each, half a period apart): the first `pulumi up` on or after the day "
        "replaces it. 90 at most (AWS FSBP IAM.3); an alert fires when a key is older."),
    Key("placement", parse_placement, _per_stack(None, "host", "host"),
        "Where the platform runs: `host` (one EC2 Docker host) or `cluster` (ECS Fargate over two "
        "or three zones, RDS PostgreSQL, ElastiCache Redis; docs/runbook.md: switching)."),
    Key("cluster", parse_cluster, _per_stack(None, _cluster_defaults(False), _cluster_defaults(True)),
        "placement cluster only: the RDS instance class (`databaseClass`) and storage "
        "(`databaseStorageGb`), the ElastiCache node type (`cacheNodeType`), and per autoscaled "
        "service (`tasks.edge`, `.api`, `.frontend`, `.n8nWorker`) its `{min, max}` tasks. "
        "A stack sets only what it changes."),
    Key("registry", parse_registry, _all({}),
        "Private registry `{server, username}`; its token is the secret `registryToken`."),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _raw_config() -> dict[str, Any]:
    """Every `storiesofsoftware:*` key the engine passed, parsed from its JSON form."""
    import sdk_internals

    merged = sdk_internals.engine_config()
    out: dict[str, Any] = {}
    for full_key, value in merged.items():
        namespace, _, key = full_key.partition(":")
        if namespace != PROJECT:
            continue
        out[key] = value
    return out


def _decode(value: Any) -> Any:
    """Structured config arrives as JSON text; plain strings stay strings."""
    if isinstance(value, str) and (value[:1] in ("{", "[") or value in ("true", "false")):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load(stack: str | None = None, project: str | None = None) -> Settings:
    """Validate the whole stack config and return `Settings`, or raise one `ConfigError`."""
    import sdk_internals

    stack = stack or pulumi.get_stack()
    project = project or pulumi.get_project()
    problems: list[str] = []

    def problem(key: str, expected: str, given: Any) -> None:
        problems.append(
            f"{PROJECT}:{key} on stack {stack}: expected {expected}; given {_describe(given)}"
        )

    if stack not in STACKS:
        raise ConfigError(stack, [f"stack {stack!r} is not one of {', '.join(STACKS)}"])

    raw = _raw_config()
    values: dict[str, Any] = {}
    for key in KEYS:
        default = key.defaults[stack]
        given = raw.get(key.name)
        if default is None:
            # The key does not apply to this stack (EC2 sizes on dev, dockerHost on AWS).
            if given is not None:
                applies = ", ".join(s for s in STACKS if key.defaults[s] is not None)
                problem(key.name, f"no value: it applies to {applies} only", given)
            continue
        value = _decode(given) if given is not None else default
        if isinstance(default, Mapping) and isinstance(value, dict) and not isinstance(key.parse, ServiceMap):
            # An object key: the stack sets only the fields it changes.
            value = _merged(default, value)
        if isinstance(key.parse, ServiceMap):
            values[key.name] = _parse_service_map(key.name, key.parse, default, value, problem)
            continue
        try:
            values[key.name] = key.parse(value)
        except Invalid as exc:
            problem(key.name, str(exc), value)

    for name, given in raw.items():
        if name in KEYS_BY_NAME or name in EXTERNAL_SECRETS:
            continue
        close = [k for k in (*KEYS_BY_NAME, *EXTERNAL_SECRETS) if _similar(k, name)]
        hint = f" (did you mean {PROJECT}:{close[0]}?)" if close else ""
        problems.append(
            f"{PROJECT}:{name} on stack {stack}: unknown key{hint}; given {_describe(given)}"
        )

    secrets: dict[str, pulumi.Output[str] | None] = {}
    cfg = pulumi.Config(PROJECT)
    for name in EXTERNAL_SECRETS:
        if name not in raw:
            secrets[name] = None
            continue
        if not sdk_internals.is_config_secret(f"{PROJECT}:{name}"):
            problems.append(
                f"{PROJECT}:{name} on stack {stack}: expected a secret "
                f"(pulumi config set --secret {name} ...); given a plain value"
            )
            continue
        secrets[name] = cfg.require_secret(name)

    if "cluster" in raw and values.get("placement") == "host":
        problem("cluster", "no value with placement host (set placement: cluster to use it)", _decode(raw["cluster"]))
    if values.get("placement") == "cluster":
        _check_cluster_images(values, secrets, problem)
    _check_stack_rules(stack, values, problem)
    today = dt.datetime.now(dt.UTC).date()
    if ROTATION_DATE_VARIABLE in os.environ:
        # `SOS_KEY_ROTATION_DATE=2027-03-01 pulumi preview` shows which keys that day rotates.
        raw_date = os.environ[ROTATION_DATE_VARIABLE]
        try:
            today = dt.date.fromisoformat(raw_date)
        except ValueError:
            problems.append(f"{ROTATION_DATE_VARIABLE} (environment) for stack {stack}: expected a date "
                            f"such as 2027-03-01; given {_describe(raw_date)}")
    if problems:
        raise ConfigError(stack, problems)

    registry_cfg = values["registry"]
    registry = None
    if registry_cfg:
        registry = Registry(registry_cfg["server"], registry_cfg["username"],
                            secrets.get("registryToken"))
    return Settings(
        project=project,
        stack=stack,
        domain=values["domain"],
        cloudflare_zone=values.get("cloudflareZone", ""),
        aws_region=values.get("awsRegion", ""),
        instance_type=values.get("instanceType", ""),
        root_volume_gb=values.get("rootVolumeGb", 0),
        data_volume_gb=values.get("dataVolumeGb", 0),
        api_replicas=values["apiReplicas"],
        frontend_replicas=values["frontendReplicas"],
        images=values["images"],
        limits=values["limits"],
        admin_cidrs=values["adminCidrs"],
        backup_retention_days=values["backupRetentionDays"],
        snapshot_retention_days=values.get("snapshotRetentionDays", 0),
        noncurrent_version_days=values.get("noncurrentVersionDays", 0),
        metrics_retention_days=values["metricsRetentionDays"],
        log_retention_days=values.get("logRetentionDays", 0),
        features=values["features"],
        docker_host=values.get("dockerHost", ""),
        edge_subnet=values.get("edgeSubnet", ""),
        rollout_batch=values["rolloutBatch"],
        drain_seconds=values["drainSeconds"],
        allow_data_replacement=values["allowDataReplacement"],
        access_key_rotation_days=values.get("accessKeyRotationDays", 0),
        registry=registry,
        placement=values.get("placement", "local"),
        cluster=values.get("cluster"),
        edge_ports=values.get("edgePorts", EdgePorts()),
        external_secrets=MappingProxyType(secrets),
        today=today,
    )


def _merged(default: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(default)
    for name, value in given.items():
        base = default.get(name)
        out[name] = _merged(base, value) if isinstance(base, Mapping) and isinstance(value, dict) else value
    return out


def _parse_service_map(key_name: str, spec: ServiceMap, default: Mapping[str, Any], given: Any,
                       problem: Callable[[str, str, Any], None]) -> Mapping[str, Any]:
    """Merge a per-service override object over the stack default, validating each entry."""
    names = spec.names
    if not isinstance(given, dict):
        problem(key_name, "an object keyed by service name", given)
        return MappingProxyType({})
    merged = {**default}
    for service, value in given.items():
        if service not in names:
            problem(f"{key_name}.{service}", f"a service name, one of {', '.join(names)}", service)
            continue
        if isinstance(value, dict) and isinstance(default.get(service), dict):
            value = {**default[service], **value}
        merged[service] = value
    out = {}
    for service in names:
        try:
            out[service] = spec.item(merged[service])
        except Invalid as exc:
            problem(f"{key_name}.{service}", str(exc), merged[service])
    return MappingProxyType(out)


def _check_stack_rules(stack: str, values: dict[str, Any],
                       problem: Callable[[str, str, Any], None]) -> None:
    if stack == "production" and values.get("apiReplicas", 2) < 2:
        problem("apiReplicas", "at least 2 on production (one replica is an outage per deploy)",
                values["apiReplicas"])
    zone, domain = values.get("cloudflareZone"), values.get("domain")
    if zone and domain and domain != zone and not domain.endswith("." + zone):
        problem("cloudflareZone", f"the zone that holds the domain {domain}", zone)
    if values.get("placement") == "cluster":
        cluster = values.get("cluster")
        if stack == "production" and cluster is not None:
            for service in ("edge", "api", "frontend"):
                if cluster.tasks[service].minimum < 2:
                    problem(f"cluster.tasks.{service}.min", "at least 2 on production (one task per zone "
                            "that can be lost)", cluster.tasks[service].minimum)
        retention = values.get("backupRetentionDays")
        if retention is not None and not 7 <= retention <= 35:
            problem("backupRetentionDays", "7 to 35 with placement cluster (RDS keeps point-in-time "
                    "recovery that long)", retention)
    cidrs = values.get("adminCidrs")
    if cidrs is None:
        return
    if stack in CLOUD_STACKS and not cidrs:
        problem("adminCidrs", "at least one CIDR on staging and production (operators SSH "
                "to the Docker host from there)", list(cidrs))
    for cidr in cidrs:
        if ipaddress.ip_network(cidr).prefixlen == 0:
            problem("adminCidrs", "specific admin networks, not the whole internet", cidr)


def _check_cluster_images(values: dict[str, Any], secrets: Mapping[str, Any],
                          problem: Callable[[str, str, Any], None]) -> None:
    """Fargate pulls through the NAT's shared address or ECR's pull-through cache (configs/images.py)."""
    registry = values.get("registry") or {}
    if registry and secrets.get("registryToken") is None:
        problem("registry", "its token as the secret registryToken too with placement cluster (the tasks "
                "pull with it; set with pulumi config set --secret registryToken ...)", dict(registry))
    server = registry.get("server") if secrets.get("registryToken") is not None else None
    for key in CLUSTER_IMAGES:
        image = (values.get("images") or {}).get(key)
        if image is not None and image_routes.pinned_by_digest(image_routes.route(image, server)):
            problem(f"images.{key}", "with placement cluster, a tag without a digest: ECR's pull-through cache "
                    "does not fetch an image pulled by digest (its first pull fails)", image)
        if image is not None and image_routes.route(image, server).anonymous_docker_hub:
            problem(f"images.{key}", "with placement cluster, an image ECR can cache or a registry with credentials: "
                    "Docker Hub admits 10 anonymous pulls an hour per address and every task pulls through "
                    "the same NAT address (set registry to Docker Hub credentials, server docker.io, or use the "
                    "image's copy on ghcr.io, quay.io or public.ecr.aws)", image)


def _similar(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    if a == b:
        return True
    if abs(len(a) - len(b)) > 2:
        return False
    # Cheap edit distance, enough to catch transposed or doubled letters.
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1] <= 2


def config_table() -> str:
    """docs/configuration.md's table of keys (settings/docs.py)."""
    from settings.docs import config_table as render

    return render()
