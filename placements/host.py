"""staging and production: one EC2 Docker host in its own network, S3, Cloudflare in front
with an Origin CA certificate and Authenticated Origin Pulls, backups to the S3 backups bucket."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.backups import OffsiteTarget
from components.container_networks import ContainerNetworks
from components.container_service import DockerRuntime
from components.docker_host import DockerHost, DockerHostArgs
from components.host_network import HostNetwork, HostNetworkArgs
from components.object_storage import ObjectStorage
from components.platform_secrets import PlatformSecrets
from components.postgres import ArchiveArgs
from configs import backup as backup_config
from configs import nginx as nginx_config
from placements.aws_front import AwsFront
from placements.base import AccessKeyAges, TlsMaterial
from settings import Settings


class HostEngine:
    """An EC2 Docker host (staging, production with `placement: host`)."""

    needs_egress = True
    hsts_max_age = nginx_config.HSTS_MAX_AGE
    # Only Cloudflare reaches 80/443 (the security group), so the ports are open on every address.
    bind_address = "0.0.0.0"

    def __init__(self, cfg: Settings, secrets: PlatformSecrets, hostnames: Sequence[str]) -> None:
        if cfg.host is None:
            raise ValueError(f"stack {cfg.stack}: placement host needs the host's settings")
        self.cfg, self.secrets = cfg, secrets
        front = AwsFront(cfg, static_keys=True)
        self.region, sizes = front.aws.region, cfg.host
        on_aws = front.on_aws
        cloudflare_ranges = front.cloudflare_ranges
        self.real_ip_from = cloudflare_ranges.all
        self.storage = front.storage
        keys = {f"{identity}/{slot}": created for identity, key in self.storage.access_keys.items()
                for slot, created in key.created.items()}
        self.access_keys = AccessKeyAges(
            created=pulumi.Output.all(**keys).apply(lambda ages: dict(ages)),
            rotation_days=front.aws.access_key_rotation_days)
        network = HostNetwork("network", HostNetworkArgs(
            name_prefix=cfg.name_prefix,
            # Only Cloudflare reaches 80/443; everything else is dropped at the security group.
            web_ingress_cidrs=cloudflare_ranges.all,
            admin_cidrs=cfg.admin_cidrs,
            flow_log_destination=self.storage.flow_log_destination,
            flow_log_ready=[self.storage.policies["logs"]],
        ), opts=on_aws)
        self.host = DockerHost("host", DockerHostArgs(
            stack=cfg.stack,
            name_prefix=cfg.name_prefix,
            instance_type=sizes.instance_type,
            root_volume_gb=sizes.root_volume_gb,
            data_volume_gb=sizes.data_volume_gb,
            snapshot_retention_days=sizes.snapshot_retention_days,
            protect_data=cfg.is_production,
            subnet_id=network.subnet.id,
            security_group_id=network.security_group.id,
            availability_zone=network.availability_zone,
            registry=cfg.registry,
        ), opts=on_aws)
        self.provider = self.host.provider
        # Ubuntu's `/` is a shared mount (systemd), and the data volume is mounted by cloud-init.
        self.runtime = DockerRuntime(cfg.name_prefix, cfg.labels, self.host.commands, bind_propagation="rslave")
        self.edge_dns = front.dns(hostnames, self.host.public_ip)
        # One Origin CA certificate covers every edge host name.
        self.tls = TlsMaterial(
            cert_pem=self.edge_dns.origin_cert_pem, key_pem=self.edge_dns.origin_key_pem,
            client_ca_pem=self.edge_dns.client_ca_pem,
            expiries=self.edge_dns.origin_cert_expires.apply(lambda at: {name: at for name in hostnames}))

    def object_storage(self, networks: ContainerNetworks) -> ObjectStorage:
        return self.storage

    def stores_ready(self) -> list[pulumi.Resource]:
        return []

    def archive(self, networks: ContainerNetworks) -> ArchiveArgs:
        # WAL and full backups: straight to the backups bucket, encrypted before they leave.
        region = self.region
        return ArchiveArgs(
            repository=self.storage.buckets["backups"].apply(lambda bucket: backup_config.Repository(
                bucket=bucket, region=region, endpoint=f"s3.{region}.amazonaws.com", path="/pgbackrest")),
            cipher_pass=self.secrets.values["backupCipher"],
            s3_access_key_id=self.storage.backup_access_key_id,
            s3_secret_access_key=self.storage.backup_secret_access_key,
            egress_network=networks.egress.name if networks.egress else None,
        )

    def offsite(self) -> OffsiteTarget:
        region = self.region
        return OffsiteTarget(
            url=self.storage.buckets["backups"].apply(lambda bucket: f"https://{bucket}.s3.{region}.amazonaws.com"),
            region=region,
            access_key_id=self.storage.backup_access_key_id,
            secret_access_key=self.storage.backup_secret_access_key,
        )

    def backup_extra_volume(self) -> pulumi.Input[str] | None:
        return None

    def outputs(self) -> dict[str, pulumi.Input[str]]:
        return {"hostPublicIp": self.host.public_ip, "cloudflareZoneId": self.edge_dns.zone_id}
