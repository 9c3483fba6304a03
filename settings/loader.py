"""Reading and validating one stack's config: every problem at once, before any resource."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import pulumi

from configs import images as image_routes
from configs import secrets as secrets_config
from settings.parsers import (
    CLUSTER_IMAGES,
    ServiceMap,
)
from settings.schema import EXTERNAL_SECRETS, KEYS, KEYS_BY_NAME
from settings.types import (
    CLOUD_STACKS,
    DEV_STACK_MAX,
    PROJECT,
    STACKS,
    AwsSettings,
    ConfigError,
    EdgePorts,
    HostSizes,
    Invalid,
    LocalSettings,
    Registry,
    Settings,
    stack_kind,
)

# Plan as if on another day (a rehearsal of a key rotation); unset, today in UTC.
ROTATION_DATE_VARIABLE = "SOS_KEY_ROTATION_DATE"


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

    kind = stack_kind(stack)
    if kind is None:
        raise ConfigError(stack, [f"stack {stack!r} is not one of {', '.join(STACKS)}, nor a developer's "
                                  f"dev-<name> (lowercase letters and digits, at most {DEV_STACK_MAX} characters)"])

    raw = _raw_config()
    values: dict[str, Any] = {}
    for key in KEYS:
        default = key.defaults[kind]
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
            problem(exc.at(key.name), str(exc), exc.value(value))

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
    _check_stack_rules(kind, values, problem)
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
    placement = values.get("placement", "local")
    return Settings(
        project=project,
        stack=stack,
        domain=values["domain"],
        api_replicas=values["apiReplicas"],
        frontend_replicas=values["frontendReplicas"],
        images=values["images"],
        limits=values["limits"],
        admin_cidrs=values["adminCidrs"],
        backup_retention_days=values["backupRetentionDays"],
        metrics_retention_days=values["metricsRetentionDays"],
        features=values["features"],
        rollout_batch=values["rolloutBatch"],
        drain_seconds=values["drainSeconds"],
        allow_data_replacement=values["allowDataReplacement"],
        registry=registry,
        placement=placement,
        aws=AwsSettings(
            region=values["awsRegion"], cloudflare_zone=values["cloudflareZone"],
            noncurrent_version_days=values["noncurrentVersionDays"], log_retention_days=values["logRetentionDays"],
            access_key_rotation_days=values["accessKeyRotationDays"]) if placement != "local" else None,
        host=HostSizes(
            instance_type=values["instanceType"], root_volume_gb=values["rootVolumeGb"],
            data_volume_gb=values["dataVolumeGb"],
            snapshot_retention_days=values["snapshotRetentionDays"]) if placement == "host" else None,
        cluster=values["cluster"] if placement == "cluster" else None,
        local=LocalSettings(docker_host=values["dockerHost"], edge_subnet=values["edgeSubnet"])
        if placement == "local" else None,
        edge_ports=values.get("edgePorts", EdgePorts()),
        external_secrets=MappingProxyType(secrets),
        secret_generations=values["secretGenerations"],
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
            problem(exc.at(f"{key_name}.{service}"), str(exc), exc.value(merged[service]))
    return MappingProxyType(out)


def _check_stack_rules(stack: str, values: dict[str, Any],
                       problem: Callable[[str, str, Any], None]) -> None:
    """`stack`: its kind (dev, staging, production)."""
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
    generations = values.get("secretGenerations") or {}
    present = secrets_config.rotatable(values.get("placement") or "local")
    for name, generation in generations.items():
        if name not in present:
            problem(f"secretGenerations.{name}", "a secret this stack has (with its placement: "
                    f"{', '.join(secrets_config.by_generation(values.get('placement') or 'local'))})", generation)
        elif present[name] != secrets_config.BY_GENERATION:
            problem(f"secretGenerations.{name}", "no generation: a new value alone would lose data or the host, "
                    "so it rotates by its procedure (docs/security.md, Rotating secrets)", generation)
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
