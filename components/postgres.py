"""PostgreSQL 16: one container on the internal data network, its data on a named volume."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ConfigFile,
    ContainerService,
    ContainerServiceArgs,
    Healthcheck,
    NetworkAttachment,
    Placement,
    VolumeMount,
    named_volume,
)
from configs import postgres as pg
from settings import Limits

SERVICE = "postgres"
# The official alpine image's postgres user.
USER = "70:70"


@dataclass
class PostgresArgs:
    placement: Placement
    image: str
    limits: Limits
    data_network: pulumi.Input[str]
    superuser_password: pulumi.Output[str]
    app_password: pulumi.Output[str]
    n8n_password: pulumi.Output[str]
    monitoring_password: pulumi.Output[str]
    protect_data: bool


class Postgres(pulumi.ComponentResource):
    """Roles: `postgres` (administration only), `sos_app` owning `storiesofsoftware`, `n8n`
    owning `n8n`, `sos_monitoring` (pg_monitor). Reachable as `postgres:5432` on the data network
    only; nothing is published."""

    host: str = SERVICE
    service: ContainerService
    volume: docker.Volume
    app_database_url: pulumi.Output[str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Postgres", name, None, opts)
        # The cluster itself: protected and kept on delete in production.
        self.volume = named_volume(f"{name}-data", f"{args.placement.name_prefix}-postgres-data", args.placement.labels,
                                   self, keep=args.protect_data)
        secret_files = {
            pg.PASSWORD_FILES["superuser"]: args.superuser_password,
            pg.PASSWORD_FILES["app"]: args.app_password,
            pg.PASSWORD_FILES["n8n"]: args.n8n_password,
            pg.PASSWORD_FILES["monitoring"]: args.monitoring_password,
            pg.HEALTH_PASSFILE: args.app_password.apply(lambda p: pg.pgpass_line(p)),
        }
        files = [
            ConfigFile(f"{pg.CONFIG_DIR}/postgresql.conf", pg.postgresql_conf(args.limits.memory_mb)),
            ConfigFile(f"{pg.INIT_DIR}/10-storiesofsoftware.sql", pg.init_sql()),
            *[ConfigFile(f"{pg.SECRETS_DIR}/{file}", content, mode="0400", secret=True)
              for file, content in secret_files.items()],
        ]
        self.service = ContainerService(f"{name}-svc", ContainerServiceArgs(
            service=SERVICE,
            placement=args.placement,
            image=args.image,
            limits=args.limits,
            networks=[NetworkAttachment(args.data_network)],
            user=USER,
            command=["postgres", "-c", f"config_file={pg.CONFIG_DIR}/postgresql.conf"],
            env={
                "POSTGRES_USER": pg.SUPERUSER,
                "POSTGRES_DB": pg.APP_DATABASE,
                "POSTGRES_PASSWORD_FILE": f"{pg.SECRETS_DIR}/{pg.PASSWORD_FILES['superuser']}",
                "PGDATA": pg.PGDATA,
                "SOS_SECRETS_DIR": pg.SECRETS_DIR,
            },
            files=files,
            volumes=[VolumeMount(self.volume.name, pg.DATA_DIR)],
            tmpfs={"/var/run/postgresql": "rw,noexec,nosuid,size=16m,mode=1777",
                   "/tmp": "rw,noexec,nosuid,size=64m,mode=1777"},
            # Parallel queries use POSIX shared memory; Docker's default /dev/shm is 64 MB.
            shm_size_mb=max(128, args.limits.memory_mb // 4),
            healthcheck=Healthcheck(pg.healthcheck(), start_period="120s"),
            # A killed postgres replays WAL at the next start; give it time to stop cleanly.
            stop_timeout=120,
        ), opts=pulumi.ResourceOptions(parent=self))
        self.app_database_url = pulumi.Output.secret(args.app_password.apply(
            lambda p: pg.database_url(p, SERVICE)))
        self.n8n_password = args.n8n_password
        self.register_outputs({"volume": self.volume.name})
