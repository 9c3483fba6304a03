"""Nginx at the edge: the only container with published ports.

Its configuration and certificates are not container uploads (a change to an upload replaces the
container, and the site is down until the new one is healthy). They travel as an edge release
(configs/edge_release.py): checked by `nginx -t`, made current, and loaded with a reload in the
running container. The container itself is replaced only for a new image, new limits or ports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import pulumi

from components.container_service import (
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    PublishedPort,
    VolumeMount,
    image,
    named_volume,
)
from components.host_commands import SHOWN
from components.one_shot_task import OneShotTask, OneShotTaskArgs
from configs import edge_release, nginx, release
from services.spec import ServiceSpec
from settings import EdgePorts, Limits

# The container's name on Docker (Prometheus scrapes it by it); the service is services/edge.py's.
SERVICE = "nginx"
# The owner-setting task is tiny; it needs no share of the edge's own limits.
OWNER_TASK_LIMITS = Limits(memory_mb=32, cpus=0.25, pids=16)


def edge_container_name(prefix: str) -> str:
    """The edge's one container (its published ports cannot be held twice)."""
    return f"{prefix}-{SERVICE}"


@dataclass
class EdgeProxyArgs:
    runtime: DockerRuntime
    spec: ServiceSpec
    edge_network: pulumi.Input[str]
    config: nginx.EdgeConfig  # its api_servers/frontend_servers are filled from the two below
    api_servers: Sequence[pulumi.Input[str]]
    frontend_servers: Sequence[pulumi.Input[str]]
    bind_address: str  # 127.0.0.1 on dev; 0.0.0.0 on EC2, where the security group narrows it
    cert_pem: pulumi.Input[str]
    key_pem: pulumi.Output[str]
    client_ca_pem: pulumi.Input[str] | None = None
    published_ports: EdgePorts = EdgePorts()
    depends_on: Sequence[pulumi.Resource] = ()


def release_files(conf: str, cert: str, key: str, client_ca: str | None) -> list[edge_release.ReleaseFile]:
    files = [
        edge_release.ReleaseFile(edge_release.CONF_FILE, conf),
        edge_release.ReleaseFile(edge_release.CERT_FILE, cert),
        # Readable by the nginx user only (the installer and nginx run as that user).
        edge_release.ReleaseFile(edge_release.KEY_FILE, key, mode=0o400),
    ]
    if client_ca is not None:
        files.append(edge_release.ReleaseFile(edge_release.CLIENT_CA_FILE, client_ca))
    return files


class EdgeProxy(pulumi.ComponentResource):
    service: ContainerService
    # The command that checks, installs and loads each configuration (see the module docstring).
    release: pulumi.CustomResource
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: EdgeProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:EdgeProxy", name, None, opts)
        if args.config.client_ca != (args.client_ca_pem is not None):
            raise ValueError("client_ca in the nginx config and client_ca_pem must go together")
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        container_name = edge_container_name(prefix)
        spec = args.spec
        pulled = image(f"{name}-image", spec.image, self)
        cache = named_volume(f"{name}-cache", f"{prefix}-nginx-cache", labels, self)
        releases = named_volume(f"{name}-releases", f"{prefix}-nginx-releases", labels, self)
        # A new volume's root belongs to root: without this, nginx cannot create its cache
        # (`mkdir() "/var/cache/nginx/static" failed (13: Permission denied)`) and never starts.
        # The cache's zones are made here too, so the volume is never empty: Docker fills an
        # empty volume from the image's directory at the mount point, owner and mode included,
        # at every new container, and the image's /var/cache/nginx is root's (shown with the
        # real engine in tests/test_docker_engine.py). The `nocopy` mount option would do it
        # too, but the provider refuses any volume option on engines older than API 1.45.
        zones = [f"/cache/{zone}" for zone in nginx.CACHE_ZONES]
        owner = OneShotTask(f"{name}-volume-owner", OneShotTaskArgs(
            image=spec.image,
            limits=OWNER_TASK_LIMITS,
            network="none",
            user="0:0",
            # DAC_OVERRIDE: a zone added later is made in a cache the nginx user already owns.
            cap_add=["CHOWN", "DAC_OVERRIDE"],
            entrypoint="/bin/sh",
            steps=[["-c", f"mkdir -p {' '.join(zones)} && chown {spec.user} /cache {' '.join(zones)} /releases"]],
            volumes=[(cache.name, "/cache"), (releases.name, "/releases")],
            commands=args.runtime.commands,
            triggers=[cache.name, releases.name],
        ), opts=pulumi.ResourceOptions(parent=self))

        conf = pulumi.Output.all(list(args.api_servers), list(args.frontend_servers)).apply(
            lambda servers: nginx.render(replace(args.config, api_servers=servers[0], frontend_servers=servers[1])))
        bundle = pulumi.Output.secret(pulumi.Output.all(conf, args.cert_pem, args.key_pem, args.client_ca_pem).apply(
            lambda v: edge_release.bundle_text(release_files(v[0], v[1], v[2], v[3]))))
        reloader = edge_release.reloader(nginx.PID_FILE, f"http://127.0.0.1:{nginx.HEALTH_PORT}{nginx.HEALTH_PATH}",
                                    nginx.CACHE_DIR)
        script = pulumi.Output.all(pulled.image_id, releases.name).apply(
            lambda v: release.apply_script(reloader, image=v[0], volume=v[1], container=container_name,
                                             user=spec.user))
        # Runs before the container exists (it starts on this release) and again on every
        # change of the configuration, a certificate, an upstream container or the image.
        self.release = args.runtime.commands.run(
            # Its output is nginx's verdict and the release id: no secret (the key is on stdin).
            f"{name}-release", create=script, stdin=bundle, logging=SHOWN,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[owner.run, *args.depends_on]))

        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.from_spec(spec, args.runtime, [args.edge_network], service=SERVICE),
            shared_image=pulled,
            volumes=[VolumeMount(cache.name, nginx.CACHE_DIR),
                     # Only the installer writes releases; nginx reads them.
                     VolumeMount(releases.name, edge_release.EDGE_DIR, read_only=True)],
            ports=[PublishedPort(nginx.HTTP_PORT, args.published_ports.http, args.bind_address),
                   PublishedPort(nginx.HTTPS_PORT, args.published_ports.https, args.bind_address)],
            opt_outs=frozenset({"publishes-port"}),
            depends_on=[self.release, *args.depends_on],
        ), opts=pulumi.ResourceOptions(parent=self))
        self.ready = list(self.service.containers)
        self.register_outputs({})
