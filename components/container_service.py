"""The one hardened component behind every long-running container.

Safe by default; a caller leaves a default only by naming an opt-out from `OPT_OUTS`, and every
opt-out in the program is therefore listed (with its reason) in this one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pulumi
import pulumi_docker as docker

from components.config_volumes import ConfigFile, ConfigVolumeArgs, by_directory, config_volume, slug
from components.host_commands import CommandRunner
from services.spec import Healthcheck, Scratch, ServiceSpec, seconds
from settings import Limits

# name -> why a service may need it. Services name the ones they use; tests list them.
OPT_OUTS: Mapping[str, str] = {
    "runs-as-root": "the image cannot run as another user (its data directory is root-owned)",
    "writable-rootfs": "the image writes outside any path that can be a tmpfs or volume",
    "no-healthcheck": "the image has no tool that can probe it",
    "publishes-port": "the service must be reachable from outside Docker (edge proxy, dev consoles)",
    "reads-host": "it reports on the host itself, through a read-only bind mount of the host's /",
    "own-init": "the image's entrypoint is an init already (tini): Docker's would be a second one",
}

LOG_OPTS = {"max-size": "10m", "max-file": "5"}
# Every container carries its opt-outs, so `docker inspect` and the plan both show them.
OPT_OUT_LABEL = "sos.opt-outs"
# And the names of the variables it gets from secrets, which the policy pack holds against
# every credential-looking variable (a policy sees values, not their secrecy).
SECRET_ENV_LABEL = "sos.secret-env"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The provider gives a pull or build 20 minutes; a first `up` pulls and builds about 3 GB (n8n,
# Grafana, the PostgreSQL build) over whatever link the host has.
IMAGE_TIMEOUTS = pulumi.CustomTimeouts(create="60m", update="60m")


@dataclass(frozen=True)
class VolumeMount:
    volume_name: pulumi.Input[str]
    target: str
    read_only: bool = False
    # "bind": `volume_name` is a host path; read-only only, and only with the `reads-host` opt-out.
    kind: str = "volume"


@dataclass(frozen=True)
class NetworkAttachment:
    network_name: pulumi.Input[str]
    aliases: Sequence[str] = ()


@dataclass(frozen=True)
class PublishedPort:
    internal: int
    external: int
    ip: str  # no default: an address must be chosen, never an implicit 0.0.0.0


def go_duration(text: str) -> str:
    """A duration as the Docker provider reads it back from the engine (Go's
    `time.Duration.String()`: "2m0s" for 120 s): written in any other form, every refresh shows a
    change."""
    hours, rest = divmod(seconds(text), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def scratch(size_mb: int, *, executable: bool = False) -> str:
    """A writable directory under a read-only root: a tmpfs shared like /tmp (1777, sticky),
    without setuid, and without executables unless the service needs them (n8n's task runner)."""
    return ",".join(["rw", *([] if executable else ["noexec"]), "nosuid", f"size={size_mb}m", "mode=1777"])


def tmpfs_options(writable: Scratch, user: str) -> str:
    """A spec's writable path as Docker's tmpfs options; a private one belongs to the user, 0700."""
    if writable.private:
        uid, gid = user.split(":")
        return f"rw,noexec,nosuid,size={writable.size_mb}m,uid={uid},gid={gid},mode=0700"
    return scratch(writable.size_mb, executable=writable.executable)


@dataclass(frozen=True)
class DockerRuntime:
    """Where every Docker service of a stack runs and how it is named and labelled: the same for
    all of them, so each Docker placement (placements/local.py, placements/host.py) builds one
    and hands it to every service."""

    name_prefix: str
    labels: Mapping[str, str]
    commands: CommandRunner
    # Propagation of a host bind (the node exporter's `/`): "rslave" shows the host's later
    # mounts (a data volume attached after start) inside, but the engine refuses it where `/` is
    # not a shared or slave mount (Docker Desktop, WSL2, rootless Docker, a Docker-in-Docker
    # engine); empty leaves the engine's default (rprivate).
    bind_propagation: str = ""


@dataclass(frozen=True)
class ImageBuild:
    """An image built by the Docker engine of the stack (on the EC2 host for staging and
    production) from a directory of this repository, instead of pulled."""

    context: Path
    args: Mapping[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        """Over every file of the context and the build arguments: any change rebuilds."""
        h = hashlib.sha256()
        for path in sorted(p for p in self.context.rglob("*") if p.is_file()):
            h.update(path.relative_to(self.context).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        for key, value in sorted(self.args.items()):
            h.update(f"{key}={value}\0".encode())
        return h.hexdigest()


def require_pinned(ref: str, owner: str) -> None:
    if ":latest" in ref or ":" not in ref.rsplit("/", 1)[-1]:
        raise ValueError(f"{owner}: image {ref!r} is not pinned to a version")


def image(resource_name: str, ref: str, parent: pulumi.Resource, build: ImageBuild | None = None) -> docker.RemoteImage:
    """A pinned image on the Docker host, kept locally (another replica or the next deploy
    still uses it): pulled, or built when `build` is given."""
    require_pinned(ref, resource_name)
    if build is None:
        return docker.RemoteImage(resource_name, name=ref, keep_locally=True,
                                  opts=pulumi.ResourceOptions(parent=parent, custom_timeouts=IMAGE_TIMEOUTS))
    return docker.RemoteImage(
        resource_name, name=ref, keep_locally=True,
        build=docker.RemoteImageBuildArgs(
            # Relative to the project (the provider runs in the program's directory): `context`
            # forces a new image when it changes, and an absolute path would differ per checkout,
            # rebuilding the image and replacing PostgreSQL for an `up` from another clone.
            context=build.context.relative_to(PROJECT_ROOT).as_posix(), dockerfile="Dockerfile",
            build_args=dict(build.args), pull_parent=True, remove=True,
            # The engine's own /build API on the provider's host (the engine picks its builder;
            # the context is tarred here and streamed to it). Otherwise the provider builds with
            # buildx on the docker CLI's current context: the operator's machine, not the EC2 host
            # that runs the image.
            use_legacy_builder=True),
        triggers={"context": build.digest()},
        opts=pulumi.ResourceOptions(parent=parent, custom_timeouts=IMAGE_TIMEOUTS))


class RunsImage(Protocol):
    """What every service component's arguments say about what it runs and where."""

    runtime: DockerRuntime
    image: str
    limits: Limits


@dataclass
class ContainerServiceArgs:
    service: str
    runtime: DockerRuntime
    image: str
    limits: Limits
    networks: Sequence[NetworkAttachment]
    user: str | None = None
    # Supplementary groups (numeric): read another service's files through their group.
    groups: Sequence[str] = ()
    command: Sequence[pulumi.Input[str]] | None = None
    entrypoint: Sequence[str] | None = None
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    files: Sequence[ConfigFile] = ()
    # A directory whose files (in subdirectories too) share one config volume -> the empty
    # subdirectories it has besides (a program that reads a tree and complains of a missing part).
    config_trees: Mapping[str, Sequence[str]] = field(default_factory=dict)
    volumes: Sequence[VolumeMount] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    cap_add: Sequence[str] = ()
    ports: Sequence[PublishedPort] = ()
    replicas: int = 1
    shm_size_mb: int | None = None
    stop_timeout: int = 30
    depends_on: Sequence[pulumi.Resource] = ()
    opt_outs: frozenset[str] = frozenset()
    # Stateless replicas that a deploy replaces start-first: see `ContainerService`.
    rolling: bool = False
    # With `rolling`: how many new replicas start at a time.
    rollout_batch: int = 1
    # Protected: a change that would replace (or delete) the container fails `pulumi up`.
    protect: bool = False

    @classmethod
    def of(cls, service: str, runs: RunsImage, networks: Sequence[pulumi.Input[str]],
           user: str) -> ContainerServiceArgs:
        """What every service states first (name, image and limits, networks, user); the rest is
        added with `dataclasses.replace`, which is checked against the fields like the constructor."""
        return cls(service=service, runtime=runs.runtime, image=runs.image, limits=runs.limits,
                   networks=[NetworkAttachment(n) for n in networks], user=user)

    @classmethod
    def from_spec(cls, spec: ServiceSpec, runtime: DockerRuntime, networks: Sequence[pulumi.Input[str]],
                  service: str | None = None) -> ContainerServiceArgs:
        """A service's spec (services/) as a container: its secrets become `secret_env`, its
        writable paths tmpfs mounts. `service`: the container's name where it is not the spec's."""
        return cls(service=service or spec.name, runtime=runtime, image=spec.image, limits=spec.limits,
                   networks=[NetworkAttachment(n) for n in networks], user=spec.user,
                   command=list(spec.command) or None, env=dict(spec.environment), secret_env=dict(spec.secrets),
                   tmpfs={s.path: tmpfs_options(s, spec.user) for s in spec.writable},
                   healthcheck=spec.health, stop_timeout=spec.stop_timeout,
                   opt_outs=frozenset({"own-init"}) if spec.own_init else frozenset())
    build: ImageBuild | None = None
    # Another service's image (same `image` reference), used instead of pulling it again.
    shared_image: docker.RemoteImage | None = None


def named_volume(resource_name: str, volume_name: str, labels: Mapping[str, str],
                 parent: pulumi.Resource, keep: bool = False) -> docker.Volume:
    """A labelled Docker volume. `keep`: protected and retained on delete, for data that must
    outlive any mistake in the program (production's databases)."""
    return docker.Volume(
        resource_name, name=volume_name,
        labels=[docker.VolumeLabelArgs(label=k, value=v) for k, v in sorted(labels.items())],
        opts=pulumi.ResourceOptions(parent=parent, protect=keep, retain_on_delete=keep))


def _check(args: ContainerServiceArgs) -> None:
    """Refuse an unsafe container unless the caller opted out by name (a programming error,
    so it fails the program before anything is registered for this service)."""
    unknown = args.opt_outs - set(OPT_OUTS)
    if unknown:
        raise ValueError(f"{args.service}: unknown opt-outs {sorted(unknown)}")
    if args.rolling and (args.healthcheck is None or args.ports):
        # Start-first needs a health check to wait for and no host port to collide on.
        raise ValueError(f"{args.service}: a rolling service needs a health check and no published port")
    needs = {
        "runs-as-root": args.user is None or args.user.split(":")[0] in ("0", "root"),
        "no-healthcheck": args.healthcheck is None,
        "publishes-port": bool(args.ports),
        "reads-host": any(v.kind == "bind" for v in args.volumes),
    }
    for name, needed in needs.items():
        if needed and name not in args.opt_outs:
            raise ValueError(f"{args.service}: needs the opt-out {name!r} ({OPT_OUTS[name]})")
        if not needed and name in args.opt_outs:
            raise ValueError(f"{args.service}: opt-out {name!r} given but not used")
    for mount in args.volumes:
        if mount.kind == "bind" and not mount.read_only:
            raise ValueError(f"{args.service}: bind mount of {mount.volume_name} must be read-only")
    for port in args.ports:
        if not port.ip:
            raise ValueError(f"{args.service}: port {port.internal} needs an explicit address")
    require_pinned(args.image, args.service)


def _uid_gid(user: str | None) -> tuple[int, int]:
    if not user:
        return 0, 0
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


class ContainerService(pulumi.ComponentResource):
    """`replicas` identical containers of one service, sharing one pulled image.

    Each container is reachable on its networks as the service name and as `<service>-<i>`.

    A service with one fixed name (`<prefix>-<service>[-<i>]`: data, n8n, the edge with its
    published ports) is replaced delete-first, since Docker refuses a second container of that
    name or port. A `rolling` service is replaced start-first, like Swarm's `order: start-first`:
    its containers are named by Pulumi (`<prefix>-<service>-<i>-<random>`, a new name on every
    replacement), so the new container starts and passes its health check while the old one
    still serves; the edge proxy, which routes to the exact container names in `names`, switches
    once every new replica is healthy, and the old ones are stopped (SIGTERM, `stop_timeout` to
    drain) only at the end of the deployment. A new container that never becomes healthy fails
    `pulumi up` before the edge switches, so the old ones keep serving.
    """

    service: str
    containers: list[docker.Container]
    # The container names, as the edge proxy routes to them (known only after create when rolling).
    names: list[pulumi.Output[str]]
    aliases: list[str]
    image: docker.RemoteImage

    def __init__(self, name: str, args: ContainerServiceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        _check(args)
        super().__init__("storiesofsoftware:platform:ContainerService", name, None, opts)
        self.service = args.service
        self.image = args.shared_image or image(f"{name}-image", args.image, self, args.build)
        uid, gid = _uid_gid(args.user)
        self.containers, self.names = [], []
        # One network alias per replica, so a proxy can balance over them individually.
        self.aliases = [f"{args.service}-{i}" for i in range(args.replicas)]
        for index in range(args.replicas):
            suffix = f"-{index}" if args.replicas > 1 else ""
            container_name = f"{args.runtime.name_prefix}-{args.service}{suffix}"
            if args.rolling:
                container_name = f"{args.runtime.name_prefix}-{args.service}-{index}"
            # Batches: replica i starts once replica i-batch of this deployment is healthy.
            previous = self.containers[index - args.rollout_batch] if args.rolling and index >= args.rollout_batch else None
            container = self._container(name + suffix, container_name, index, args, uid, gid, previous)
            self.containers.append(container)
            self.names.append(container.name)
        self.register_outputs({})

    def _container(self, name: str, container_name: str, index: int, args: ContainerServiceArgs,
                   uid: int, gid: int, previous: docker.Container | None) -> docker.Container:
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.runtime.labels, "service": args.service, "replica": str(index),
                  OPT_OUT_LABEL: ",".join(sorted(args.opt_outs)),
                  SECRET_ENV_LABEL: ",".join(sorted(args.secret_env))}
        mounts = [docker.ContainerMountArgs(
            target=v.target, type=v.kind, source=v.volume_name, read_only=v.read_only,
            bind_options=docker.ContainerMountBindOptionsArgs(propagation=args.runtime.bind_propagation)
            if v.kind == "bind" and args.runtime.bind_propagation else None)
            for v in args.volumes]
        writers: list[pulumi.Resource] = []
        config = by_directory(args.files, args.config_trees)
        targets = {*config, *(v.target for v in args.volumes), *args.tmpfs}
        for directory, files in config.items():
            # A config volume is mounted read-only, so the engine cannot make the mount point of
            # a volume inside it (`mkdir …/etc/sos/secrets: read-only file system`): it carries them.
            inner = sorted({t[len(directory) + 1:] for t in targets if t.startswith(directory + "/")}
                           | set(args.config_trees.get(directory, ())))
            volume, writer = config_volume(self, f"{name}-cfg-{slug(directory)}", ConfigVolumeArgs(
                container_name, directory, files, inner, args.runtime.commands, self.image.image_id, uid, gid))
            writers.append(writer)
            # Read-only: a service cannot change the configuration it was given.
            mounts.append(docker.ContainerMountArgs(target=directory, type="volume", source=volume.name,
                                                    read_only=True))
        aliases = {args.service: [args.service, f"{args.service}-{index}"]}
        networks = [
            docker.ContainerNetworksAdvancedArgs(
                name=n.network_name, aliases=sorted(set(n.aliases) | set(aliases[args.service])))
            for n in args.networks
        ]
        healthcheck = None
        if args.healthcheck:
            h = args.healthcheck
            healthcheck = docker.ContainerHealthcheckArgs(
                tests=list(h.test), interval=go_duration(h.interval), timeout=go_duration(h.timeout),
                retries=h.retries, start_period=go_duration(h.start_period),
                start_interval=go_duration(h.start_interval))
        container = docker.Container(
            container_name if args.rolling else name,
            # Rolling: Pulumi names it `<prefix>-<service>-<i>-<random>`, anew on each replacement.
            name=None if args.rolling else container_name,
            hostname=container_name,
            image=self.image.image_id,  # the pulled digest, not a moving tag
            user=args.user,
            group_adds=list(args.groups) or None,
            command=list(args.command) if args.command is not None else None,
            entrypoints=list(args.entrypoint) if args.entrypoint is not None else None,
            envs=_envs(args.env, args.secret_env),
            mounts=mounts or None,
            tmpfs=dict(args.tmpfs) or None,
            read_only="writable-rootfs" not in args.opt_outs,
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=list(args.cap_add) or None),
            security_opts=["no-new-privileges:true"],
            init="own-init" not in args.opt_outs,
            memory=args.limits.memory_mb,
            memory_swap=args.limits.memory_mb,  # no swap on top of the limit
            cpus=f"{args.limits.cpus:g}",
            shm_size=args.shm_size_mb,
            log_driver="json-file",
            log_opts=dict(LOG_OPTS),
            restart="unless-stopped",
            must_run=True,
            # Dependents are created only once this container reports healthy.
            wait=healthcheck is not None,
            # Five minutes: the slowest first start here (n8n's migrations, start period 120 s)
            # with its retries, before `pulumi up` gives up on a container.
            wait_timeout=300,
            stop_timeout=args.stop_timeout,
            destroy_grace_seconds=args.stop_timeout,
            healthcheck=healthcheck,
            networks_advanced=networks,
            ports=[docker.ContainerPortArgs(internal=p.internal, external=p.external, ip=p.ip)
                   for p in args.ports] or None,
            labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())],
            opts=pulumi.ResourceOptions(
                parent=self,
                # A fixed name or published port cannot exist twice: the old one goes first.
                delete_before_replace=not args.rolling,
                protect=args.protect,
                depends_on=[*args.depends_on, *writers, *([previous] if previous is not None else [])],
                # Rolling replicas were registered under the component-relative name before.
                aliases=[pulumi.Alias(name=name)] if args.rolling else None,
                # The provider neither updates nor replaces a container for a new `init`.
                replace_on_changes=["init"]),
        )
        # pulumi-docker 5.2 cannot set a cgroup PID limit; the CLI can, on every new container.
        args.runtime.commands.run(
            f"{name}-pids",
            create=pulumi.Output.concat(
                "docker update --pids-limit ", str(args.limits.pids), " ", container.id),
            triggers=[container.id],
            opts=child,
        )
        return container


def _envs(env: Mapping[str, pulumi.Input[str]],
          secret_env: Mapping[str, pulumi.Input[str]]) -> pulumi.Input[Sequence[str]]:
    overlap = set(env) & set(secret_env)
    if overlap:
        raise ValueError(f"variables both plain and secret: {sorted(overlap)}")
    names = sorted({**env, **secret_env})
    if not names:
        return []
    values = pulumi.Output.all(*[secret_env.get(k, env.get(k)) for k in names])
    listed = values.apply(lambda vs: [f"{k}={v}" for k, v in zip(names, vs, strict=True)])
    return pulumi.Output.secret(listed) if secret_env else listed
