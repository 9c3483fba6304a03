"""What the host and the cluster placements share in front of them: the AWS provider with the
stack's tags, Cloudflare (its provider and ranges, then its DNS, CDN and certificates), and the
S3 buckets."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_cloudflare as cloudflare

from components.cloudflare_edge import CloudflareEdge, CloudflareEdgeArgs, ip_ranges
from components.object_storage import ObjectStorage, ObjectStorageArgs
from settings import Settings


class AwsFront:
    def __init__(self, cfg: Settings, *, static_keys: bool) -> None:
        if cfg.aws is None:
            raise ValueError(f"stack {cfg.stack}: the AWS placements need the AWS settings")
        self.cfg, self.aws = cfg, cfg.aws
        aws_cfg = cfg.aws
        self.aws_provider = aws.Provider("aws", region=aws_cfg.region,
                                         default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.labels))
        self.on_aws = pulumi.ResourceOptions(providers={"aws": self.aws_provider})
        # The API token comes from CLOUDFLARE_API_TOKEN in the environment, never from state.
        self.cloudflare_provider = cloudflare.Provider("cloudflare")
        self.cloudflare_ranges = ip_ranges(self.cloudflare_provider)
        self.storage = ObjectStorage("storage", ObjectStorageArgs(
            name_prefix=cfg.name_prefix,
            region=aws_cfg.region,
            site_origins=[cfg.origin(), cfg.origin("www")],
            noncurrent_days=aws_cfg.noncurrent_version_days,
            protect=cfg.is_production,
            backup_retention_days=cfg.backup_retention_days,
            # Governance mode yields to any administrator with s3:BypassGovernanceRetention, so a
            # stolen admin credential could still erase the backups; compliance yields to nobody.
            backup_lock_mode="COMPLIANCE" if cfg.is_production else None,
            log_retention_days=aws_cfg.log_retention_days,
            key_rotation_days=aws_cfg.access_key_rotation_days,
            today=cfg.today,
            # The host's containers sign with static keys; the cluster's tasks with task roles,
            # and its load balancer logs to the log bucket.
            static_keys=static_keys,
            load_balancer_logs=not static_keys,
        ), opts=self.on_aws)

    def dns(self, hostnames: Sequence[str], origin: pulumi.Input[str] | None) -> CloudflareEdge:
        """Cloudflare in front of every edge host name, with an Origin CA certificate and
        Authenticated Origin Pulls; `origin` None: pointed later (`point_at`)."""
        cfg = self.cfg
        return CloudflareEdge("cdn", CloudflareEdgeArgs(
            zone=self.aws.cloudflare_zone, domain=cfg.domain, hostnames=list(hostnames), origin=origin,
            manage_zone=cfg.manages_zone), opts=pulumi.ResourceOptions(providers={"cloudflare": self.cloudflare_provider}))
