"""The backup container: one scheduler for every backup job of the stack.

It runs the PostgreSQL image (pgBackRest, pg_dump, curl) as the same uid as PostgreSQL, with
the cluster's data volume read-only and its socket, so pgBackRest backs up as if on the
database host. Jobs and their intervals are in configs/backup.py; every job writes a metric
file on the metrics volume, which the node exporter reads (last good backup per kind).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ConfigFile,
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    Healthcheck,
    NetworkAttachment,
    VolumeMount,
    named_volume,
    scratch,
)
from components.postgres import POSIX_REPO_DIR, SOCKET_DIR, USER, Postgres
from configs import backup
from configs import postgres as pg
from configs import redis as rc
from settings import Limits

SERVICE = "backup"


@dataclass
class OffsiteTarget:
    """The bucket complete sets are copied to, and the identity that may only add to it."""

    url: pulumi.Input[str]          # e.g. https://<bucket>.s3.<region>.amazonaws.com
    region: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Output[str]


@dataclass
class BackupsArgs:
    runtime: DockerRuntime
    limits: Limits
    postgres: Postgres
    redis_volume: pulumi.Input[str]
    networks: list[pulumi.Input[str]]
    offsite: OffsiteTarget
    minio_volume: pulumi.Input[str] | None = None
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Backups(pulumi.ComponentResource):
    service: ContainerService
    sets_volume: docker.Volume
    metrics_volume: docker.Volume

    def __init__(self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Backups", name, None, opts)
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        pgs = args.postgres
        # Local copies of the newest sets and the scheduler's state; the bucket holds the rest.
        self.sets_volume = named_volume(f"{name}-sets", f"{prefix}-backups", labels, self)
        # Read by the node exporter's textfile collector.
        self.metrics_volume = named_volume(f"{name}-metrics", f"{prefix}-backup-metrics", labels, self)
        with_minio = args.minio_volume is not None
        volumes = [
            VolumeMount(pgs.volume.name, pg.DATA_DIR, read_only=True),
            VolumeMount(pgs.socket_volume.name, SOCKET_DIR),
            VolumeMount(self.sets_volume.name, backup.BACKUP_DIR),
            VolumeMount(self.metrics_volume.name, backup.METRICS_DIR),
            VolumeMount(args.redis_volume, f"{backup.SOURCES_DIR}/redis", read_only=True),
        ]
        if pgs.repo_volume is not None:
            volumes.append(VolumeMount(pgs.repo_volume.name, POSIX_REPO_DIR))
        if args.minio_volume is not None:
            volumes.append(VolumeMount(args.minio_volume, f"{backup.SOURCES_DIR}/minio", read_only=True))
        key_env: dict[str, pulumi.Input[str]] = {"AWS_ACCESS_KEY_ID": args.offsite.access_key_id}
        key_secret_env: dict[str, pulumi.Input[str]] = {"AWS_SECRET_ACCESS_KEY": args.offsite.secret_access_key}
        if pgs.credentials_volume is not None:
            # The same identity as pgBackRest's, read from its file at each run: a rotated key
            # reaches the jobs without replacing this container (a running upload keeps the old
            # key, which stays valid for half a rotation period).
            volumes.append(VolumeMount(pgs.credentials_volume.name, backup.CREDENTIALS_DIR, read_only=True))
            key_env, key_secret_env = {}, {}
        files = [
            ConfigFile(backup.CONF_PATH, pgs.pgbackrest_conf),
            *[ConfigFile(f"{backup.SCRIPTS_DIR}/{file}", text, mode="0555")
              for file, text in backup.scripts(with_minio).items()],
        ]
        self.service = ContainerService(f"{name}-svc", ContainerServiceArgs(
            service=SERVICE,
            runtime=args.runtime,
            image=pgs.image_ref,
            shared_image=pgs.service.image,
            limits=args.limits,
            networks=[NetworkAttachment(n) for n in args.networks],
            user=USER,
            # Redis's files are its group's to read (configs/redis.py); the snapshot copies dump.rdb.
            groups=[rc.GROUP],
            entrypoint=["/bin/sh"],
            command=[f"{backup.SCRIPTS_DIR}/scheduler"],
            env={
                # pg_dump and pgBackRest reach the server over its socket, as its superuser.
                "PGHOST": SOCKET_DIR,
                "PGUSER": pg.SUPERUSER,
                "PGDATABASE": "postgres",
                "PGDATA": pg.PGDATA,
                "SOS_S3_URL": args.offsite.url,
                "SOS_S3_REGION": args.offsite.region,
                **key_env,
                **pgs.pgbackrest_env,
            },
            secret_env={
                **key_secret_env,
                **pgs.pgbackrest_secret_env,
            },
            files=files,
            volumes=volumes,
            tmpfs={"/tmp": scratch(256)},
            healthcheck=Healthcheck(backup.heartbeat_healthcheck(), interval="60s", start_period="120s"),
            # Lets a running backup or upload finish its current file.
            stop_timeout=120,
            depends_on=[*pgs.service.containers, *pgs.credentials_written, *args.depends_on],
        ), opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
