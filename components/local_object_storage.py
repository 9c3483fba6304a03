"""dev: MinIO in a container, with the platform's buckets created by a one-shot task."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    Healthcheck,
    NetworkAttachment,
    PublishedPort,
    VolumeMount,
    named_volume,
    scratch,
)
from components.one_shot_task import OneShotTask, OneShotTaskArgs
from configs.storage import BUCKETS
from settings import Limits

SERVICE = "minio"
MINIO_PORT = 9000
ROOT_USER = "sos-admin"
CONSOLE_PORT = 9001


@dataclass
class LocalObjectStorageArgs:
    runtime: DockerRuntime
    image: str
    client_image: str
    limits: Limits
    client_limits: Limits
    data_network: pulumi.Input[str]
    edge_network: pulumi.Input[str]
    root_password: pulumi.Output[str]


class LocalObjectStorage(pulumi.ComponentResource):
    endpoint: str = f"http://{SERVICE}:{MINIO_PORT}"
    region: str = "us-east-1"
    force_path_style: bool = True
    buckets: dict[str, str]
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    volume: docker.Volume
    service: ContainerService
    # Creates the buckets once MinIO is healthy; the applications wait for it.
    setup: OneShotTask

    def __init__(self, name: str, args: LocalObjectStorageArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:LocalObjectStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.volume = volume = named_volume(f"{name}-data", f"{args.runtime.name_prefix}-minio-data",
                                            args.runtime.labels, self)
        self.service = ContainerService(f"{name}-svc", ContainerServiceArgs(
            service=SERVICE,
            runtime=args.runtime,
            image=args.image,
            limits=args.limits,
            # The data network for the API; the edge network only so the console can be
            # published (Docker publishes nothing from an internal network).
            networks=[NetworkAttachment(args.data_network), NetworkAttachment(args.edge_network)],
            command=["server", "/data", "--console-address", f":{CONSOLE_PORT}"],
            env={"MINIO_ROOT_USER": ROOT_USER, "MINIO_BROWSER_REDIRECT": "off"},
            secret_env={"MINIO_ROOT_PASSWORD": args.root_password},
            volumes=[VolumeMount(volume.name, "/data")],
            tmpfs={"/tmp": scratch(16)},
            healthcheck=Healthcheck(["CMD", "mc", "ready", "local"], start_period="30s"),
            ports=[PublishedPort(CONSOLE_PORT, CONSOLE_PORT, "127.0.0.1")],
            opt_outs=frozenset({"runs-as-root", "publishes-port"}),
        ), opts=child)
        self.buckets = {b: b for b in BUCKETS}
        # mc reads the whole alias, credentials included, from MC_HOST_<alias>.
        host_url = args.root_password.apply(
            lambda p: f"http://{ROOT_USER}:{_url_quote(p)}@{SERVICE}:{MINIO_PORT}")
        self.setup = OneShotTask(f"{name}-buckets", OneShotTaskArgs(
            image=args.client_image,
            limits=args.client_limits,
            network=args.data_network,
            user="1000:1000",
            env={"MC_CONFIG_DIR": "/tmp/.mc"},
            secret_env={"MC_HOST_sos": host_url},
            commands=args.runtime.commands,
            steps=[
                ["mb", "--ignore-existing", *[f"sos/{b}" for b in BUCKETS]],
                ["version", "enable", "sos/backups"],
                ["anonymous", "set", "none", *[f"sos/{b}" for b in BUCKETS]],
            ],
            depends_on=self.service.containers,
        ), opts=child)
        self.access_key_id = pulumi.Output.from_input(ROOT_USER)
        self.secret_access_key = pulumi.Output.secret(args.root_password)
        self.register_outputs({})


def _url_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
