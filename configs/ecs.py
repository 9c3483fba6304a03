"""ECS task definitions for the cluster placement (issue 19), rendered as the ECS API takes them.

The container defaults of the host (components/container_service.py) carried over: non-root, a
read-only root filesystem with a writable /tmp, every capability dropped, never privileged, a
health check, a stop timeout, logs to CloudWatch, and secrets only by reference
(`valueFrom`: Secrets Manager or SSM), never in `environment`. tests/test_ecs_tasks.py validates
the rendered requests against the RegisterTaskDefinition shape of the ECS model in botocore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.spec import Scratch

# Fargate's CPU units and the memory (MiB) each allows.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
}
# Fargate stops a container at most this long after SIGTERM.
FARGATE_MAX_STOP_TIMEOUT = 120


# A writable directory (services/spec.Scratch) is a tmpfs in the task's memory. Not a task
# volume: on Fargate an empty one is root:root 0755 unless the image declares a VOLUME there (ECS
# "bind mounts"), which no non-root task could write. Fargate takes `linuxParameters.tmpfs`
# since January 2026 (aws/containers-roadmap#736). Shared like /tmp (1777, sticky): each task
# runs one user, and no `uid=`/`gid=` option then depends on how Fargate passes owners to the
# mount; never executable.
TMPFS_OPTIONS = ("rw", "noexec", "nosuid", "nodev", "mode=1777")
TMP = Scratch("/tmp", 64)


def fargate_size(cpus: float, memory_mb: int) -> tuple[int, int]:
    """The smallest Fargate task size with at least `cpus` and `memory_mb`."""
    for units, memories in FARGATE_SIZES.items():
        if units >= cpus * 1024:
            for memory in memories:
                if memory >= memory_mb:
                    return units, memory
    raise ValueError(f"no Fargate size holds {cpus} CPUs and {memory_mb} MiB")


def scratch_budget_mb(cpus: float, memory_mb: int) -> int:
    """What a task's tmpfs directories may take: every page written to them counts against the
    Fargate task's hard memory limit, so what the process's own limit leaves of it."""
    return fargate_size(cpus, memory_mb)[1] - memory_mb


@dataclass(frozen=True)
class TaskSpec:
    name: str
    image: str
    cpus: float
    memory_mb: int
    user: str
    port: int | None
    health_command: Sequence[str]
    log_group: str
    region: str
    environment: Mapping[str, str] = field(default_factory=dict)
    # variable -> ARN of a Secrets Manager secret (or `<arn>:<json key>::`) or SSM parameter
    secrets: Mapping[str, str] = field(default_factory=dict)
    stop_timeout: int = 30
    # The service's own check, as on a host: how long a starting task's failures do not count,
    # how often it runs, how long one may take, and how many failures make the task unhealthy.
    health_start_seconds: int = 60
    health_interval_seconds: int = 15
    health_timeout_seconds: int = 5
    health_retries: int = 3
    # ECS's init process as PID 1; off for an image whose entrypoint is one already (tini).
    init_process: bool = True
    command: Sequence[str] = ()
    # A Secrets Manager secret with the registry's credentials, for an image pulled directly
    # from a private registry ECR does not cache (components/image_cache.py).
    repository_credentials: str | None = None
    # Writable directories under the read-only root; /tmp first, as every task has.
    writable: Sequence[Scratch] = (TMP,)


def container_definition(spec: TaskSpec) -> dict[str, Any]:
    leaked = [k for k in spec.environment if k in spec.secrets]
    if leaked:
        raise ValueError(f"{spec.name}: {leaked} given both as environment and as a secret")
    # ECS's HealthCheck ranges (the API reference): a value outside fails RegisterTaskDefinition.
    for what, value, low, high in (("start period", spec.health_start_seconds, 0, 300),
                                   ("interval", spec.health_interval_seconds, 5, 300),
                                   ("timeout", spec.health_timeout_seconds, 2, 60),
                                   ("retries", spec.health_retries, 1, 10)):
        if not low <= value <= high:
            raise ValueError(f"{spec.name}: ECS allows a health check {what} of {low} to {high}; given {value}")
    if not 1 <= spec.stop_timeout <= FARGATE_MAX_STOP_TIMEOUT:
        raise ValueError(f"{spec.name}: Fargate allows a stop timeout of 1 to {FARGATE_MAX_STOP_TIMEOUT} s")
    if spec.user.split(":")[0] in ("0", "root", ""):
        raise ValueError(f"{spec.name}: tasks run as a non-root user")
    if not all(part.isdigit() for part in spec.user.split(":")):
        raise ValueError(f"{spec.name}: a numeric uid:gid, which the tmpfs options name")
    if sum(s.size_mb for s in spec.writable) > scratch_budget_mb(spec.cpus, spec.memory_mb):
        raise ValueError(f"{spec.name}: its tmpfs directories and its own memory exceed the task's memory")
    definition: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "essential": True,
        "user": spec.user,
        "readonlyRootFilesystem": True,
        # `privileged` is left out: Fargate refuses the parameter, and absent means false.
        # Fargate adds no capability beyond Docker's defaults; drop those too. The init process
        # reaps zombies and forwards SIGTERM, as Docker's does on the host; an image that brings
        # its own (n8n's tini) runs without, as on the host (a second init only adds a process).
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": spec.init_process,
                            "tmpfs": [{"containerPath": s.path, "size": s.size_mb, "mountOptions": list(TMPFS_OPTIONS)}
                                      for s in spec.writable]},
        "environment": [{"name": k, "value": v} for k, v in sorted(spec.environment.items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(spec.secrets.items())],
        "stopTimeout": spec.stop_timeout,
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": spec.log_group, "awslogs-region": spec.region, "awslogs-stream-prefix": spec.name}},
    }
    if spec.health_command:
        definition["healthCheck"] = {"command": list(spec.health_command), "interval": spec.health_interval_seconds,
                                     "timeout": spec.health_timeout_seconds, "retries": spec.health_retries,
                                     "startPeriod": spec.health_start_seconds}
    if spec.port is not None:
        definition["portMappings"] = [{"containerPort": spec.port, "protocol": "tcp", "name": spec.name}]
    if spec.command:
        definition["command"] = list(spec.command)
    if spec.repository_credentials:
        definition["repositoryCredentials"] = {"credentialsParameter": spec.repository_credentials}
    return definition


def register_request(spec: TaskSpec, family: str, execution_role_arn: str, task_role_arn: str) -> dict[str, Any]:
    """The whole RegisterTaskDefinition input for one single-container task."""
    cpu, memory = fargate_size(spec.cpus, spec.memory_mb)
    return {
        "family": family,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(cpu),
        "memory": str(memory),
        "executionRoleArn": execution_role_arn,
        "taskRoleArn": task_role_arn,
        "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        "containerDefinitions": [container_definition(spec)],
    }
