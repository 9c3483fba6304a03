"""dev: everything on the local Docker engine, MinIO for object storage, a self-signed
certificate, backups to a repository volume and MinIO."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.backups import OffsiteTarget
from components.container_networks import ContainerNetworks
from components.container_service import DockerRuntime
from components.edge_proxy import edge_container_name
from components.local_docker_host import LocalDockerHost, LocalDockerHostArgs
from components.local_object_storage import LocalObjectStorage, LocalObjectStorageArgs
from components.platform_secrets import PlatformSecrets
from components.postgres import POSIX_REPO_DIR, ArchiveArgs
from components.self_signed_tls import SelfSignedTls, SelfSignedTlsArgs
from configs import backup as backup_config
from configs import nginx as nginx_config
from placements.base import AccessKeyAges, TlsMaterial
from settings import Settings


class LocalEngine:
    """dev's own Docker engine."""

    needs_egress = False
    # One year: browsers ignore HSTS for localhost (Fetch standard since whatwg/fetch#1781;
    # Firefox, Chrome 132+), so dev sends the real header at the lowest max-age hstspreload.org
    # and gixy accept. Safari still applies it (WebKit bug 282054): http://localhost:<http
    # port> then becomes https on that port, which fails; use the https URL there.
    hsts_max_age = nginx_config.DEV_HSTS_MAX_AGE
    real_ip_from: Sequence[str] = ()
    # Only this machine reaches the published ports.
    bind_address = "127.0.0.1"

    def __init__(self, cfg: Settings, secrets: PlatformSecrets, hostnames: Sequence[str]) -> None:
        if cfg.local is None:
            raise ValueError(f"stack {cfg.stack}: the local engine needs its settings")
        self.cfg = cfg
        self.secrets = secrets
        host = LocalDockerHost("host", LocalDockerHostArgs(
            cfg.local.docker_host, cfg.stack, cfg.registry, edge_ports=cfg.edge_ports, bind_address=self.bind_address,
            edge_subnet=cfg.local.edge_subnet, project=cfg.project, edge_container=edge_container_name(cfg.name_prefix)))
        self.provider = host.provider
        self.runtime = DockerRuntime(cfg.name_prefix, cfg.labels, host.commands)
        dev_tls = SelfSignedTls("tls", SelfSignedTlsArgs(cfg.domain, list(hostnames)))
        self.tls = TlsMaterial(
            cert_pem=dev_tls.cert_pem, key_pem=dev_tls.key_pem, client_ca_pem=None,
            expiries=dev_tls.cert_expires.apply(lambda at: {name: at for name in hostnames}))
        self._storage: LocalObjectStorage | None = None
        # MinIO's keys are generated secrets of dev's own; nothing in AWS to rotate.
        self.access_keys = AccessKeyAges(created={}, rotation_days=0)

    def object_storage(self, networks: ContainerNetworks) -> LocalObjectStorage:
        if self._storage is None:
            cfg = self.cfg
            self._storage = LocalObjectStorage("storage", LocalObjectStorageArgs(
                runtime=self.runtime,
                image=cfg.images["minio"],
                client_image=cfg.images["minioClient"],
                limits=cfg.limits["minio"],
                client_limits=cfg.limits["minioClient"],
                data_network=networks.data.name,
                edge_network=networks.edge.name,
                root_password=self.secrets.values["minioRoot"],
            ), opts=pulumi.ResourceOptions(providers={"docker": self.provider}))
        return self._storage

    def _created_storage(self) -> LocalObjectStorage:
        assert self._storage is not None, "object_storage() comes first"
        return self._storage

    def stores_ready(self) -> list[pulumi.Resource]:
        return [self._created_storage().setup.run]

    def archive(self, networks: ContainerNetworks) -> ArchiveArgs:
        # dev's MinIO speaks plain HTTP, which pgBackRest's S3 client refuses: a volume instead.
        return ArchiveArgs(repository=backup_config.Repository.posix(POSIX_REPO_DIR),
                           cipher_pass=self.secrets.values["backupCipher"])

    def offsite(self) -> OffsiteTarget:
        storage = self._created_storage()
        return OffsiteTarget(url=f"{storage.endpoint}/{storage.buckets['backups']}", region=storage.region,
                             access_key_id=storage.access_key_id, secret_access_key=storage.secret_access_key)

    def backup_extra_volume(self) -> pulumi.Input[str] | None:
        return self._created_storage().volume.name

    def outputs(self) -> dict[str, pulumi.Input[str]]:
        # No host and no Cloudflare zone: those outputs are listed as absent.
        return {}
