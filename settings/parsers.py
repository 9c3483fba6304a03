"""Parsers: a raw config value -> a typed value, or `Invalid("expected ...")`."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from configs.postgres import RDS_INSTANCE_MEMORY_MB
from configs.secrets import HOST_KEYS, SPECS
from settings.types import (
    ClusterSizes,
    EdgePorts,
    Features,
    Invalid,
    Limits,
    TaskBounds,
)

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
    values = {name: _sub(name, lambda v: parse_positive_int(v, 1, 65535), value) for name, value in raw.items()}
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
        raise Invalid(f"one of {', '.join(DATABASE_CLASSES)}", path="databaseClass", given=database_class)
    node_type = raw.get("cacheNodeType")
    if not isinstance(node_type, str) or not re.fullmatch(r"cache\.[a-z0-9]+\.[a-z0-9]+", node_type):
        raise Invalid("an ElastiCache node type such as cache.t4g.small", path="cacheNodeType", given=node_type)
    tasks = raw.get("tasks")
    if not isinstance(tasks, dict) or set(tasks) - set(CLUSTER_SERVICES):
        raise Invalid(f"an object keyed by {', '.join(CLUSTER_SERVICES)}", path="tasks", given=tasks)
    return ClusterSizes(
        database_class=database_class,
        database_storage_gb=_sub("databaseStorageGb", int_between(20, 65536), raw.get("databaseStorageGb")),
        cache_node_type=node_type,
        tasks=MappingProxyType({name: _sub(f"tasks.{name}", parse_task_bounds, tasks.get(name))
                                for name in CLUSTER_SERVICES}),
    )


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
    """Parse a field of an object: a complaint names the field's path and its own value."""
    try:
        return parse(raw)
    except Invalid as exc:
        raise Invalid(str(exc), path=f"{name}.{exc.path}" if exc.path else name, given=exc.value(raw)) from None


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


# Every name `secretGenerations` may hold; which a stack has depends on its placement (loader).
SECRET_NAMES = (*SPECS, *HOST_KEYS)


def parse_generations(raw: Any) -> Mapping[str, int]:
    """`{name: generation}`: bumping a secret's generation replaces it on the next `pulumi up`."""
    if raw in ("", None, {}):
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise Invalid("an object {secret name: generation}, such as {\"postgresApp\": 2}")
    for name in raw:
        if name not in SECRET_NAMES:
            raise Invalid(f"a secret's name, one of {', '.join(SECRET_NAMES)}", path=name, given=name)
    return MappingProxyType({name: _sub(name, int_between(1, 1_000_000), value) for name, value in raw.items()})
