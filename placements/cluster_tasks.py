"""How the cluster placement turns specs (services/) into ECS: task definitions, Secrets Manager
vaults, Cloud Map names, and the services and one-off tasks that run them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from components.cluster_service import (
    ClusterService,
    ClusterServiceArgs,
    ClusterTask,
    ClusterTaskArgs,
    Scaling,
)
from components.image_cache import ImageCache
from configs import ecs
from services.spec import ServiceSpec, StepSpec, seconds
from settings import AwsSettings, Settings

# Seconds a discovered address is cached: the edge's resolver re-asks as often (`valid=10s`).
DISCOVERY_TTL = 10


def secret_json(values: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(values.items())))


def task_spec(spec: ServiceSpec | StepSpec, stack: str,
              region: str) -> tuple[ecs.TaskSpec, dict[str, pulumi.Input[str]]]:
    """A service's or a step's spec as an ECS task: the task definition's part, and the variables
    known only at deploy time, which ClusterService/ClusterTask add to it."""
    plain = {k: v for k, v in spec.environment.items() if isinstance(v, str)}
    later = {k: v for k, v in spec.environment.items() if not isinstance(v, str)}
    common = {"name": spec.name, "image": spec.image, "cpus": spec.limits.cpus, "memory_mb": spec.limits.memory_mb,
              "user": spec.user, "log_group": f"/sos/{stack}/{spec.name}", "region": region, "environment": plain,
              "command": list(spec.command)}
    unsupported = [w.path for w in spec.writable if w.executable or w.private]
    if unsupported:
        # The cluster's tmpfs options are fixed (configs/ecs.TMPFS_OPTIONS): never silently weaker.
        raise ValueError(f"{spec.name}: {unsupported} must be executable or private, which Fargate's tmpfs is not")
    writable = tuple(spec.writable)
    if isinstance(spec, StepSpec):
        # A step without its own writable paths gets the default /tmp.
        return ecs.TaskSpec(port=None, health_command=(), **common,  # type: ignore[arg-type]
                            **({"writable": writable} if writable else {})), later
    health = spec.health
    return ecs.TaskSpec(port=spec.port, health_command=list(health.test),  # type: ignore[arg-type]
                        health_start_seconds=seconds(health.start_period),
                        health_interval_seconds=seconds(health.interval),
                        health_timeout_seconds=seconds(health.timeout), health_retries=health.retries,
                        init_process=not spec.own_init, stop_timeout=spec.stop_timeout,
                        writable=writable, **common), later


class TaskMaker:
    def __init__(self, cfg: Settings, aws_cfg: AwsSettings, cluster: aws.ecs.Cluster, vpc_id: pulumi.Input[str],
                 subnet_ids: Sequence[pulumi.Input[str]], security_group_ids: Sequence[pulumi.Input[str]],
                 image_cache: ImageCache, started_after: Sequence[pulumi.Resource],
                 opts: pulumi.ResourceOptions) -> None:
        self.cfg, self.cluster, self.opts = cfg, cluster, opts
        self.prefix, self.region = cfg.name_prefix, aws_cfg.region
        self.started_after = list(started_after)
        self.common = {"name_prefix": self.prefix, "cluster_arn": cluster.arn, "subnet_ids": list(subnet_ids),
                       "log_retention_days": aws_cfg.log_retention_days, "image_cache": image_cache,
                       "security_group_ids": list(security_group_ids)}
        self.namespace = aws.servicediscovery.PrivateDnsNamespace(
            "discovery", name=f"{self.prefix}.internal", vpc=vpc_id,
            description=f"{self.prefix}: the services' names inside the VPC", opts=opts)
        self.vaults: dict[str, aws.secretsmanager.Secret] = {}
        # The current version of each vault (by the secret's identity), which tasks reference.
        self.versions: dict[int, aws.secretsmanager.SecretVersion] = {}
        self.vault_keys: dict[str, set[str]] = {}

    def vault(self, name: str, values: Mapping[str, pulumi.Input[str]]) -> aws.secretsmanager.Secret:
        """One Secrets Manager secret per consumer, a JSON object of its variables."""
        secret = aws.secretsmanager.Secret(
            f"{name}-secrets", name_prefix=f"{self.prefix}/{name}-", description=f"{self.prefix} {name}: its secrets",
            recovery_window_in_days=30 if self.cfg.is_production else 7, opts=self.opts)
        version = aws.secretsmanager.SecretVersion(
            f"{name}-secrets-value", secret_id=secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.all(**dict(values)).apply(secret_json)), opts=self.opts)
        self.vaults[name] = secret
        self.versions[id(secret)] = version
        return secret

    def vault_of(self, spec: ServiceSpec) -> aws.secretsmanager.Secret | None:
        """The service's vault (its family's, shared by n8n's processes), made at its first use."""
        if not spec.secrets:
            return None
        name = spec.family or spec.name
        if name not in self.vaults:
            self.vault(name, spec.secrets)
            self.vault_keys[name] = set(spec.secrets)
        elif self.vault_keys.get(name) != set(spec.secrets):
            # Its tasks would name a JSON key the vault lacks, and fail only when they start.
            raise ValueError(f"{spec.name}: its secrets differ from those of {name}'s other processes")
        return self.vaults[name]

    def keys_of(self, secret: aws.secretsmanager.Secret, names: Sequence[str]) -> dict[str, pulumi.Output[str]]:
        """References to keys of the vault's current version, by its id: ECS reads a secret only
        as a task starts, so a new value (a rotation replaces the version) must make a new task
        definition, which the service rolls out and a step runs again."""
        version = self.versions[id(secret)].version_id
        return {n: pulumi.Output.all(secret.arn, version).apply(lambda v, n=n: f"{v[0]}:{n}::{v[1]}")
                for n in names}

    def discovered(self, name: str) -> aws.servicediscovery.Service:
        """A name in the VPC's private namespace (`<name>.<prefix>.internal`)."""
        return aws.servicediscovery.Service(
            f"{name}-discovery", name=name,
            dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
                namespace_id=self.namespace.id, routing_policy="MULTIVALUE",
                dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(type="A", ttl=DISCOVERY_TTL)]),
            opts=self.opts)

    def step(self, spec: StepSpec, owner: aws.secretsmanager.Secret | None, depends_on: Sequence[pulumi.Resource],
             extra_secrets: Mapping[str, pulumi.Input[str]] | None = None,
             extra_secret_arns: Sequence[pulumi.Input[str]] = (),
             extra_environment: Mapping[str, pulumi.Input[str]] | None = None) -> ClusterTask:
        """A one-off step, its secrets the named keys of its owner's vault."""
        task, later = task_spec(spec, self.cfg.stack, self.region)
        own = self.keys_of(owner, list(spec.secrets)) if owner is not None else {}
        return ClusterTask(spec.name, ClusterTaskArgs(
            spec=task, region=self.region, secrets={**(extra_secrets or {}), **own},
            secret_arns=[*extra_secret_arns, *([owner.arn] if owner is not None else [])],
            environment_inputs={**later, **(extra_environment or {})},
            depends_on=[*depends_on, *self.started_after], **self.common), opts=self.opts)  # type: ignore[arg-type]

    def service(self, spec: ServiceSpec, owner: aws.secretsmanager.Secret | None, scaling: Scaling,
                depends_on: Sequence[pulumi.Resource], **extra: object) -> ClusterService:
        """A service, its secrets by reference to its owner's vault."""
        task, later = task_spec(spec, self.cfg.stack, self.region)
        by_reference = ({"secrets": self.keys_of(owner, sorted(spec.secrets)), "secret_arns": [owner.arn]}
                        if owner is not None else {})
        return ClusterService(spec.name, ClusterServiceArgs(
            spec=task, environment_inputs=later, cluster_name=self.cluster.name, scaling=scaling,
            depends_on=[*depends_on, *self.started_after], **by_reference,  # type: ignore[arg-type]
            **{**self.common, **extra}), opts=self.opts)  # type: ignore[arg-type]
