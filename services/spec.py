"""What a service is, whatever runs it: the spec every placement reads (services/).

A spec is plain data. A Docker placement turns it into a hardened container
(components/container_service.py), the cluster into an ECS task definition (configs/ecs.py);
neither adds to what a service needs, only to how it is run there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pulumi

from settings import Limits


@dataclass(frozen=True)
class Healthcheck:
    test: Sequence[str]
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 5
    start_period: str = "60s"
    start_interval: str = "2s"


def seconds(text: str) -> int:
    """A duration such as "2m" or "90s" in seconds."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or match is None:
        raise ValueError(f"duration {text!r}: whole seconds, minutes or hours (30s, 2m, 1h30m)")
    hours, minutes, secs = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def node_http_check(port: int, path: str, start_period: str) -> Healthcheck:
    """For the Node.js images, which have no curl or wget: Node's own http client, healthy on a
    200 within four seconds."""
    script = (f"require('http').get('http://127.0.0.1:{port}{path}',r=>process.exit(r.statusCode===200?0:1))"
              ".on('error',()=>process.exit(1)).setTimeout(4000,function(){this.destroy()})")
    return Healthcheck(["CMD", "node", "-e", script], start_period=start_period)


@dataclass(frozen=True)
class Scratch:
    """A writable directory under the read-only root, in memory (a tmpfs): rebuilt at each start."""

    path: str
    size_mb: int
    # Programs may run from it (n8n's task runner on a Docker host), and only the service's user
    # may enter it: Docker only; the cluster refuses both (its tmpfs is always noexec, 1777).
    executable: bool = False
    private: bool = False


# What a service may need running before it: the database, the cache, object storage.
DATA_STORES = frozenset({"database", "cache", "storage"})


@dataclass(frozen=True)
class ServiceSpec:
    """One long-running process of the platform."""

    name: str
    image: str
    limits: Limits
    user: str  # numeric uid:gid, never root
    port: int | None
    health: Healthcheck
    # Plain variables; a value may be known only at deploy time (a bucket's name).
    environment: Mapping[str, pulumi.Input[str]]
    # Variables whose values are secrets: each placement delivers them its own way (an env file
    # or a secret-marked input on Docker, Secrets Manager references on the cluster).
    secrets: Mapping[str, pulumi.Input[str]]
    writable: tuple[Scratch, ...]
    # How long a stopping process has after SIGTERM (a replica drains its requests).
    stop_timeout: int
    command: tuple[str, ...] = ()
    # The image's entrypoint is an init already (tini): a placement adds none of its own.
    own_init: bool = False
    # The data stores it (and its steps) cannot start without: of DATA_STORES.
    needs: frozenset[str] = frozenset()
    # Processes of one service (n8n's) share its name for their secrets.
    family: str = ""
    # Never two at once, even during a deploy (n8n's main process: two would fire every schedule
    # twice; several mains need n8n's licensed multi-main): the old one stops before the new starts.
    singleton: bool = False
    # Others reach it by name (n8n's workers take their work from the queue instead).
    discoverable: bool = True

    def __post_init__(self) -> None:
        if not self.needs <= DATA_STORES:
            raise ValueError(f"{self.name}: needs {sorted(self.needs - DATA_STORES)}, not data stores")


@dataclass(frozen=True)
class StepSpec:
    """A one-off step that runs to completion before the services that need it; its failure
    fails `pulumi up`."""

    name: str
    image: str
    limits: Limits
    user: str
    args: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    # The names of the owner's secrets it receives (the owner: the service whose secrets they are).
    owner: str = ""
    secrets: tuple[str, ...] = ()
    # The program `args` go to (a shell for a script): Docker runs it as the entrypoint, the
    # cluster puts it before `args` in the task's command (the image's entrypoint then passes it
    # on). None: the image's entrypoint and command take `args`.
    entrypoint: str | None = None
    writable: tuple[Scratch, ...] = ()

    def __post_init__(self) -> None:
        if self.secrets and not self.owner:
            raise ValueError(f"{self.name}: a step's secrets are its owner's; name the owner")

    @property
    def command(self) -> list[str]:
        """The whole command line after the image's entrypoint (the cluster's `command`)."""
        return [*([self.entrypoint] if self.entrypoint else []), *self.args]


class ObjectStore(Protocol):
    """S3 or S3-compatible storage, as the API and the backups use it. Without static keys (the
    cluster: the API's task role), both keys are None."""

    endpoint: pulumi.Input[str]
    region: pulumi.Input[str]
    force_path_style: bool
    buckets: Mapping[str, pulumi.Input[str]]
    access_key_id: pulumi.Input[str] | None
    secret_access_key: pulumi.Output[str] | None


@dataclass(frozen=True)
class Wiring:
    """What a service is told about the rest of the platform, as its placement provides it."""

    storage: ObjectStore
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    postgres_host: pulumi.Input[str]
    # How one service reaches another by name: "api" on a Docker network, "api.<prefix>.internal"
    # through Cloud Map.
    domain_suffix: str = ""
    # n8n as several processes sharing a Redis queue (the cluster); one process on a Docker host.
    queue_redis_host: pulumi.Input[str] | None = None
    queue_password: pulumi.Input[str] | None = None

    def host(self, service: str) -> str:
        return f"{service}{self.domain_suffix}"
