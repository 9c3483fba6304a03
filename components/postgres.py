"""PostgreSQL 16: one container on the internal data network, its data on a named volume."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.container_service import (
    ConfigFile,
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    Healthcheck,
    ImageBuild,
    NetworkAttachment,
    VolumeMount,
    named_volume,
    scratch,
)
from components.container_service import image as pulled_image
from components.host_commands import SHOWN
from components.one_shot_task import OneShotTask, OneShotTaskArgs
from configs import backup, release
from configs import postgres as pg
from settings import Limits

SERVICE = "postgres"
USER = pg.IMAGE_USER
IMAGE_CONTEXT = Path(__file__).resolve().parent.parent / "images" / "postgres-pgbackrest"
SOCKET_DIR = pg.SOCKET_DIR
POSIX_REPO_DIR = "/var/lib/pgbackrest"
# Writing one small file: a shell, printf, chmod, chown, mv.
CREDENTIALS_TASK_LIMITS = Limits(memory_mb=32, cpus=0.25, pids=16)
# The same for the password files; the roles step adds one psql.
SECRETS_TASK_LIMITS = Limits(memory_mb=64, cpus=0.25, pids=16)


@dataclass
class ArchiveArgs:
    """Where pgBackRest keeps WAL and backups. `repository.bucket` may be an Output (the
    stack's backups bucket); a posix repository is a volume of its own (dev)."""

    repository: pulumi.Input[backup.Repository]
    cipher_pass: pulumi.Output[str]
    s3_access_key_id: pulumi.Input[str] | None = None
    s3_secret_access_key: pulumi.Output[str] | None = None
    # A network with a route out, for archive-push to S3 (the data network has none).
    egress_network: pulumi.Input[str] | None = None


def built_image_ref(name_prefix: str, base: str) -> str:
    """`postgres:16.10-alpine` -> `sos-dev/postgres-pgbackrest:16.10-alpine`: the version stays
    in the tag, so the built image is as pinned as its base."""
    return f"{name_prefix}/postgres-pgbackrest:{base.rsplit(':', 1)[1]}"


@dataclass
class PostgresArgs:
    runtime: DockerRuntime
    image: str
    limits: Limits
    data_network: pulumi.Input[str]
    superuser_password: pulumi.Output[str]
    app_password: pulumi.Output[str]
    n8n_password: pulumi.Output[str]
    monitoring_password: pulumi.Output[str]
    protect_data: bool
    archive: ArchiveArgs
    # The container too (production, unless allowDataReplacement): a replacement stops the server.
    protect_container: bool = False


class Postgres(pulumi.ComponentResource):
    """Roles: `postgres` (administration only), `sos_app` owning `storiesofsoftware`, `n8n`
    owning `n8n`, `sos_monitoring` (pg_monitor). Reachable as `postgres:5432` on the data network
    only; nothing is published.

    Runs an image built from the pinned official one plus pgBackRest, which archives every WAL
    segment (archive_command) to the repository; the backup container (components/backups.py)
    shares this image, the data volume (read-only), the socket volume and the repository."""

    host: str = SERVICE
    service: ContainerService
    # Dependents wait for these: the server is up and passes its health check.
    ready: list[pulumi.Resource]
    volume: docker.Volume
    socket_volume: docker.Volume
    repo_volume: docker.Volume | None
    app_database_url: pulumi.Output[str]
    image_ref: str
    pgbackrest_conf: pulumi.Output[str]
    pgbackrest_secret_env: dict[str, pulumi.Input[str]]
    # Plain environment pgBackRest needs beside the config (where the key file is), if any.
    pgbackrest_env: dict[str, str]
    credentials_volume: docker.Volume | None
    secrets_volume: docker.Volume
    credentials_written: list[pulumi.Resource]
    settings_volume: docker.Volume

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Postgres", name, None, opts)
        # The cluster itself: protected and kept on delete in production.
        self.volume = named_volume(f"{name}-data", f"{args.runtime.name_prefix}-postgres-data", args.runtime.labels,
                                   self, keep=args.protect_data)
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        secrets_written, passwords_digest = self._password_files(name, args)
        # The socket directory is shared with the backup container (pgBackRest and pg_dump
        # connect over it); a volume rather than a tmpfs for that reason.
        self.socket_volume = named_volume(f"{name}-socket", f"{prefix}-postgres-socket", labels, self)
        self.repo_volume = None
        volumes = [VolumeMount(self.volume.name, pg.DATA_DIR), VolumeMount(self.socket_volume.name, SOCKET_DIR),
                   VolumeMount(self.secrets_volume.name, pg.SECRETS_DIR, read_only=True)]
        repository = pulumi.Output.from_input(args.archive.repository)
        self.pgbackrest_conf = repository.apply(
            lambda repo: backup.pgbackrest_conf(repo, pgdata=pg.PGDATA, socket_dir=SOCKET_DIR))
        self.pgbackrest_secret_env: dict[str, pulumi.Input[str]] = {
            "PGBACKREST_REPO1_CIPHER_PASS": args.archive.cipher_pass}
        self.pgbackrest_env: dict[str, str] = {}
        self.credentials_volume = None
        self.credentials_written: list[pulumi.Resource] = []
        if args.archive.s3_secret_access_key is not None:
            self._s3_credentials(name, args)
            volumes.append(VolumeMount(self.credentials_volume.name, backup.CREDENTIALS_DIR, read_only=True))
        else:
            # The only copy of dev's WAL and backups: a volume of its own, shared with the
            # backup container.
            self.repo_volume = named_volume(f"{name}-pgbackrest-repo", f"{prefix}-pgbackrest-repo", labels, self)
            volumes.append(VolumeMount(self.repo_volume.name, POSIX_REPO_DIR))
        networks = [NetworkAttachment(args.data_network)]
        if args.archive.egress_network is not None:
            networks.append(NetworkAttachment(args.archive.egress_network))
        self.image_ref = built_image_ref(prefix, args.image)
        settings_written = self._settings_release(name, args)
        volumes.append(VolumeMount(self.settings_volume.name, pg.SETTINGS_DIR, read_only=True))
        files = [
            ConfigFile(f"{pg.CONFIG_DIR}/postgresql.conf",
                       pg.restart_conf(args.limits.memory_mb, extra=backup.archive_settings())),
            ConfigFile(backup.CONF_PATH, self.pgbackrest_conf),
            ConfigFile(f"{pg.INIT_DIR}/10-storiesofsoftware.sql", pg.init_sql()),
        ]
        self.service = ContainerService(f"{name}-svc", ContainerServiceArgs(
            service=SERVICE,
            runtime=args.runtime,
            image=self.image_ref,
            build=ImageBuild(IMAGE_CONTEXT, {"BASE_IMAGE": args.image}),
            limits=args.limits,
            networks=networks,
            user=USER,
            command=["postgres", "-c", f"config_file={pg.CONFIG_DIR}/postgresql.conf"],
            env={
                "POSTGRES_USER": pg.SUPERUSER,
                "POSTGRES_DB": pg.APP_DATABASE,
                "POSTGRES_PASSWORD_FILE": f"{pg.SECRETS_DIR}/{pg.PASSWORD_FILES['superuser']}",
                "PGDATA": pg.PGDATA,
                "SOS_SECRETS_DIR": pg.SECRETS_DIR,
                **self.pgbackrest_env,
            },
            # Inherited by archive_command's pgBackRest.
            secret_env=self.pgbackrest_secret_env,
            files=files,
            volumes=volumes,
            # pgBackRest's lock and spool files live in /tmp.
            tmpfs={"/tmp": scratch(64)},
            # Parallel queries use POSIX shared memory; Docker's default /dev/shm is 64 MB.
            shm_size_mb=max(128, args.limits.memory_mb // 4),
            healthcheck=Healthcheck(pg.healthcheck(), start_period="120s"),
            # A killed postgres replays WAL at the next start; give it time to stop cleanly.
            stop_timeout=120,
            protect=args.protect_container,
            depends_on=[*self.credentials_written, *secrets_written, settings_written],
        ), opts=pulumi.ResourceOptions(parent=self))
        self.app_database_url = pulumi.Output.secret(args.app_password.apply(
            lambda p: pg.database_url(p, SERVICE)))
        roles = OneShotTask(f"{name}-roles", OneShotTaskArgs(
            image=args.image,
            limits=SECRETS_TASK_LIMITS,
            network=args.data_network,
            user=USER,
            entrypoint="/bin/sh",
            steps=[["-c", pg.apply_roles_script()]],
            env={"SOS_SECRETS_DIR": pg.SECRETS_DIR},
            volumes=[(self.socket_volume.name, SOCKET_DIR), (self.secrets_volume.name, pg.SECRETS_DIR)],
            read_only=[pg.SECRETS_DIR],
            commands=args.runtime.commands,
            # Every new password file, and every new server (a replaced container on the same
            # volume kept the roles, and gets them again regardless).
            triggers=[passwords_digest, *[c.id for c in self.service.containers]],
            depends_on=[*self.service.containers, *secrets_written],
        ), opts=pulumi.ResourceOptions(parent=self))
        # Clients wait for the roles as well as the server: a rotated password is in force first.
        self.ready = [*self.service.containers, roles.run]
        self.register_outputs({})

    def _settings_release(self, name: str, args: PostgresArgs) -> pulumi.Resource:
        """The settings a reload applies, as a release (configs/release.py): a new archive_timeout
        or work_mem reaches the running server without stopping it. The first release is in place
        before the server's first start; later ones are checked, made current and reloaded."""
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        self.settings_volume = named_volume(f"{name}-settings", f"{prefix}-postgres-settings", labels, self)
        # A new volume's root is root's; the installer runs as the server's user.
        owner = OneShotTask(f"{name}-settings-owner", OneShotTaskArgs(
            image=args.image, limits=CREDENTIALS_TASK_LIMITS, network="none", user="0:0", cap_add=["CHOWN"],
            entrypoint="/bin/sh", steps=[["-c", f"chown {USER} /settings"]],
            volumes=[(self.settings_volume.name, "/settings")], commands=args.runtime.commands,
            triggers=[self.settings_volume.name],
        ), opts=pulumi.ResourceOptions(parent=self))
        installer = pulled_image(f"{name}-settings-image", args.image, self)
        text = release.bundle_text([release.ReleaseFile(
            pg.SETTINGS_FILE, pg.reload_conf(args.limits.memory_mb, extra=backup.archive_settings()))])
        script = pulumi.Output.all(installer.image_id, self.settings_volume.name).apply(
            lambda v: release.apply_script(pg.reloader(SOCKET_DIR), image=v[0], volume=v[1],
                                           container=f"{prefix}-{SERVICE}", user=USER))
        # Its output is the check's verdict and the release id; the settings hold no secret.
        return args.runtime.commands.run(
            f"{name}-settings-release", create=script, stdin=text, logging=SHOWN,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[owner.run]))

    def _password_files(self, name: str, args: PostgresArgs) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
        """The password files on a volume of their own, rewritten by a one-shot task when a
        password changes: a rotation replaces no container (docs/security.md)."""
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        # Kept like the data in production: the server reads its superuser's file at every start.
        self.secrets_volume = named_volume(f"{name}-secrets", f"{prefix}-postgres-secrets", labels, self,
                                           keep=args.protect_data)
        values: dict[str, pulumi.Input[str]] = {
            pg.SECRET_FILE_VARIABLES[pg.PASSWORD_FILES["superuser"]]: args.superuser_password,
            pg.SECRET_FILE_VARIABLES[pg.PASSWORD_FILES["app"]]: args.app_password,
            pg.SECRET_FILE_VARIABLES[pg.PASSWORD_FILES["n8n"]]: args.n8n_password,
            pg.SECRET_FILE_VARIABLES[pg.PASSWORD_FILES["monitoring"]]: args.monitoring_password,
            # The line without its newline: an env file cannot carry one (the script adds it).
            pg.SECRET_FILE_VARIABLES[pg.HEALTH_PASSFILE]: args.app_password.apply(
                lambda p: pg.pgpass_line(p).rstrip("\n")),
        }
        digest = pulumi.Output.secret(pulumi.Output.all(*values.values()).apply(
            lambda vs: hashlib.sha256("\0".join(vs).encode()).hexdigest()))
        writer = self._writer(
            f"{name}-secrets-writer", args, pg.write_secrets_script(owner=USER), values, self.secrets_volume,
            pg.SECRETS_DIR, SECRETS_TASK_LIMITS,
            # A new password writes the files again (a digest: the passwords stay out of the
            # triggers, which are secret in the state anyway).
            triggers=[digest])
        return [writer.run], digest

    def _s3_credentials(self, name: str, args: PostgresArgs) -> None:
        """The S3 key pair as a file on a volume of its own, rewritten by a one-shot task for
        every new key: PostgreSQL's archive_command and the backup jobs read it at each run, so
        a key rotation replaces neither container."""
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        self.credentials_volume = named_volume(f"{name}-s3-credentials", f"{prefix}-pgbackrest-credentials",
                                               labels, self)
        self.pgbackrest_env = backup.credentials_env()
        writer = self._writer(
            f"{name}-s3-credentials-writer", args, backup.write_s3_credentials_script(owner=USER),
            {"SOS_S3_KEY": args.archive.s3_access_key_id or "", "SOS_S3_KEY_SECRET": args.archive.s3_secret_access_key},
            self.credentials_volume, backup.CREDENTIALS_DIR, CREDENTIALS_TASK_LIMITS,
            # A new key (its id changes with it) writes the file again.
            triggers=[args.archive.s3_access_key_id])
        self.credentials_written = [writer.run]

    def _writer(self, name: str, args: PostgresArgs, script: str, secret_env: dict[str, pulumi.Input[str]],
                volume: docker.Volume, directory: str, limits: Limits,
                triggers: list[pulumi.Input[object]]) -> OneShotTask:
        """A one-shot task that writes secret files into one of the server's volumes: the plain
        image (a shell, nothing of pgBackRest), as root (a new volume is root's) with CAP_CHOWN
        only, to hand the files to postgres."""
        return OneShotTask(name, OneShotTaskArgs(
            image=args.image, limits=limits, network=args.data_network, user="0:0", cap_add=["CHOWN"],
            entrypoint="/bin/sh", steps=[["-c", script]], secret_env=secret_env, volumes=[(volume.name, directory)],
            commands=args.runtime.commands, triggers=triggers), opts=pulumi.ResourceOptions(parent=self))
