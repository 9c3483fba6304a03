"""staging/production: private, encrypted, versioned S3 buckets and the API's S3 identity."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.access_keys import RotatingAccessKey, RotatingAccessKeyArgs
from configs.storage import BUCKETS


@dataclass
class ObjectStorageArgs:
    name_prefix: str
    region: str
    site_origins: Sequence[str]
    # content and images: how long an overwritten or deleted version stays recoverable.
    noncurrent_days: int
    protect: bool
    backup_retention_days: int = 35
    # Object Lock on every backup version for the whole retention: COMPLIANCE in production,
    # where nobody, the account's root included, can shorten or remove it (see the README).
    backup_lock_mode: str | None = None
    # How long access logs (and the VPC's flow logs, which share the log bucket) are kept.
    log_retention_days: int = 90
    # Static keys: each slot's key is replaced this often (configs/key_rotation.py).
    key_rotation_days: int = 90
    today: dt.date = dt.date(2026, 1, 1)
    # The host's containers sign with static keys; the cluster's tasks with their task roles.
    static_keys: bool = True
    # The cluster's load balancer writes its access logs under `alb/` of the log bucket.
    load_balancer_logs: bool = False


# Days after which backups move to Standard-IA (its minimum storage duration is 30 days).
BACKUP_INFREQUENT_AFTER_DAYS = 30


def backup_writer_policy(backups_arn: str) -> str:
    """The host's backup identity: it adds and reads objects and lists the bucket (pgBackRest
    reads its info files), and can neither delete anything nor touch retention."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "WriteBackups", "Effect": "Allow",
             "Action": ["s3:PutObject", "s3:GetObject"], "Resource": [f"{backups_arn}/*"]},
            {"Sid": "ListBackups", "Effect": "Allow",
             "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": [backups_arn]},
            {"Sid": "NeverDeleteOrUnlock", "Effect": "Deny",
             "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention",
                        "s3:PutObjectLegalHold", "s3:BypassGovernanceRetention",
                        "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration",
                        "s3:PutBucketPolicy", "s3:DeleteBucket", "s3:PutBucketVersioning"],
             "Resource": [backups_arn, f"{backups_arn}/*"]},
        ],
    })


def deny_insecure_transport(bucket_arn: str, *grants: dict) -> str:
    """TLS only, after the grants the bucket has (the order means nothing to S3; moto's logging
    check stops at the first grant it recognises, and reads no statement after it)."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [*grants, {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


# Where each kind of log lands in the log bucket.
ACCESS_LOG_PREFIX = "s3-access/"
FLOW_LOG_PREFIX = "flow-logs/"
LOAD_BALANCER_LOG_PREFIX = "alb"
# Everything that writes logs into the log bucket, by key prefix (the load balancer writes
# under `alb/AWSLogs/...`).
LOG_PREFIXES = (ACCESS_LOG_PREFIX, FLOW_LOG_PREFIX, f"{LOAD_BALANCER_LOG_PREFIX}/")


def load_balancer_log_statement(log_arn: str, account: str, elb_account_arn: str) -> dict:
    """Elastic Load Balancing writes an ALB's access logs as its regional account (regions
    opened before August 2022), into this account's prefix only."""
    return {"Sid": "LoadBalancerAccessLogs", "Effect": "Allow", "Principal": {"AWS": elb_account_arn},
            "Action": "s3:PutObject", "Resource": f"{log_arn}/{LOAD_BALANCER_LOG_PREFIX}/AWSLogs/{account}/*"}


def log_delivery_statements(log_arn: str, account: str, region: str, sources: Mapping[str, str]) -> list[dict]:
    """What S3's server access logging and VPC flow logs need to write into the log bucket, as
    AWS documents them, each narrowed to its prefix and to this account's own sources. With
    ACLs disabled (BucketOwnerEnforced) a bucket policy is the only way to grant them."""
    logs_source = {"StringEquals": {"aws:SourceAccount": account},
                   "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{region}:{account}:*"}}
    # One grant per source bucket, each for its own prefix only: one bucket's requests cannot be
    # written where another's are kept.
    return [
        *[{"Sid": f"S3ServerAccessLogs{kind.capitalize()}", "Effect": "Allow",
           "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
           "Resource": f"{log_arn}/{ACCESS_LOG_PREFIX}{kind}/*",
           "Condition": {"ArnLike": {"aws:SourceArn": source_arn},
                         "StringEquals": {"aws:SourceAccount": account}}}
          for kind, source_arn in sources.items()],
        {"Sid": "FlowLogsWrite", "Effect": "Allow",
         "Principal": {"Service": "delivery.logs.amazonaws.com"}, "Action": "s3:PutObject",
         "Resource": f"{log_arn}/{FLOW_LOG_PREFIX}AWSLogs/{account}/*",
         "Condition": {"StringEquals": {**logs_source["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"},
                       "ArnLike": logs_source["ArnLike"]}},
        {"Sid": "FlowLogsAclCheck", "Effect": "Allow",
         "Principal": {"Service": "delivery.logs.amazonaws.com"},
         "Action": ["s3:GetBucketAcl", "s3:ListBucket"], "Resource": log_arn, "Condition": logs_source},
    ]


def api_policy(content_arn: str, images_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ApiObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [f"{content_arn}/*", f"{images_arn}/*"],
        }],
    })


class ObjectStorage(pulumi.ComponentResource):
    endpoint: str
    region: str
    force_path_style: bool = False
    buckets: dict[str, pulumi.Output[str]]
    # None without static keys (the cluster: task roles).
    access_key_id: pulumi.Output[str] | None = None
    secret_access_key: pulumi.Output[str] | None = None
    # The write-only identity of the backup container (and pgBackRest's archive-push).
    backup_access_key_id: pulumi.Output[str]
    backup_secret_access_key: pulumi.Output[str]
    bucket_resources: dict[str, aws.s3.Bucket]
    # Access logs of the other buckets and the VPC's flow logs; it logs nowhere itself.
    log_bucket: aws.s3.Bucket
    policies: dict[str, aws.s3.BucketPolicy]
    access_keys: dict[str, RotatingAccessKey]
    # What the API may do in S3 (its static key's group, or its task role on the cluster).
    api_policy: pulumi.Output[str]

    @property
    def flow_log_destination(self) -> pulumi.Output[str]:
        return pulumi.Output.concat(self.log_bucket.arn, "/", FLOW_LOG_PREFIX)

    def __init__(self, name: str, args: ObjectStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ObjectStorage", name, None, opts)
        self.region = args.region
        self.endpoint = f"https://s3.{args.region}.amazonaws.com"
        self.bucket_resources: dict[str, aws.s3.Bucket] = {}
        self.buckets = {}
        self.policies: dict[str, aws.s3.BucketPolicy] = {}
        child = pulumi.ResourceOptions(parent=self)
        for kind in BUCKETS:
            bucket = self._bucket(name, kind, args, self._data_rules(kind, args), lock_mode=(
                args.backup_lock_mode if kind == "backups" else None))
            self.bucket_resources[kind] = bucket
            self.buckets[kind] = bucket.bucket

        self.log_bucket = self._bucket(name, "logs", args, self._log_rules(args), log_sources=pulumi.Output.all(
            **{kind: b.arn for kind, b in self.bucket_resources.items()}))
        for kind, bucket in self.bucket_resources.items():
            aws.s3.BucketLogging(
                f"{name}-{kind}-access-log", bucket=bucket.id, target_bucket=self.log_bucket.id,
                target_prefix=f"{ACCESS_LOG_PREFIX}{kind}/",
                # Date-partitioned keys: a day's requests are one prefix to read in an incident.
                target_object_key_format=aws.s3.BucketLoggingTargetObjectKeyFormatArgs(
                    partitioned_prefix=aws.s3.BucketLoggingTargetObjectKeyFormatPartitionedPrefixArgs(
                        partition_date_source="EventTime")),
                # S3 refuses a target whose policy does not yet admit its log delivery.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.policies["logs"]]))

        aws.s3.BucketCorsConfiguration(
            f"{name}-images-cors", bucket=self.bucket_resources["images"].id,
            cors_rules=[aws.s3.BucketCorsConfigurationCorsRuleArgs(
                allowed_origins=list(args.site_origins),
                allowed_methods=["GET", "HEAD", "PUT"],
                allowed_headers=["*"],
                expose_headers=["ETag"],
                max_age_seconds=3600,
            )], opts=child)

        self.api_policy = pulumi.Output.all(self.bucket_resources["content"].arn,
                                            self.bucket_resources["images"].arn).apply(lambda arns: api_policy(*arns))
        self.access_keys = {}
        if args.static_keys:
            # Keys, not the instance role: IMDS is out of the containers' reach (hop limit 1).
            api = RotatingAccessKey(f"{name}-api", RotatingAccessKeyArgs(
                purpose="api", rotation_days=args.key_rotation_days, today=args.today, policy=self.api_policy,
            ), opts=child)
            self.access_key_id = api.access_key_id
            self.secret_access_key = api.secret_access_key
            writer = RotatingAccessKey(f"{name}-backup-writer", RotatingAccessKeyArgs(
                purpose="backup-writer", rotation_days=args.key_rotation_days, today=args.today,
                policy=self.bucket_resources["backups"].arn.apply(backup_writer_policy),
            ), opts=child)
            self.backup_access_key_id = writer.access_key_id
            self.backup_secret_access_key = writer.secret_access_key
            self.access_keys = {"api": api, "backup-writer": writer}
        self.register_outputs({})

    @staticmethod
    def _data_rules(kind: str, args: ObjectStorageArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
        rules = [_noncurrent_rule(
            # backups: a superseded version lives as long as any backup does.
            args.backup_retention_days if kind == "backups" else args.noncurrent_days)]
        if kind == "backups":
            retention = args.backup_retention_days
            rules.append(aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="backup-retention", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                # Backups leave by age here: the host's identity cannot delete them.
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=retention),
                transitions=[aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                    days=BACKUP_INFREQUENT_AFTER_DAYS, storage_class="STANDARD_IA")]
                if retention > BACKUP_INFREQUENT_AFTER_DAYS else None))
        return rules

    @staticmethod
    def _log_rules(args: ObjectStorageArgs) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
        return [
            # Expired logs become noncurrent versions, gone a week later.
            _noncurrent_rule(LOG_NONCURRENT_DAYS),
            # Only the logs expire: the bucket also keeps the load balancer's trust store bundle
            # (cluster_entry.TRUST_STORE_KEY), which must outlive any retention.
            *[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id=f"log-retention-{prefix.strip('/')}", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.log_retention_days))
              for prefix in LOG_PREFIXES],
        ]

    def _bucket(self, name: str, kind: str, args: ObjectStorageArgs,
                rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs], *, lock_mode: str | None = None,
                log_sources: pulumi.Input[Mapping[str, str]] | None = None) -> aws.s3.Bucket:
        """A private bucket: owner-enforced, every public access blocked, encrypted, versioned,
        TLS only, incomplete uploads aborted; `log_sources` (kind -> bucket ARN) makes it the log
        bucket."""
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-{kind}", bucket_prefix=f"{args.name_prefix}-{kind}-",
            object_lock_enabled=(lock_mode is not None) or None,
            tags={"Name": f"{args.name_prefix}-{kind}", "purpose": kind},
            # Production objects are the product; a bucket is never deleted with its contents.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect,
                                        retain_on_delete=args.protect))
        aws.s3.BucketOwnershipControls(
            f"{name}-{kind}-ownership", bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child)
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-{kind}-public-access", bucket=bucket.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-{kind}-encryption", bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                # SSE-S3: the only encryption S3 server access logs can be delivered under.
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"),
                bucket_key_enabled=True)],
            opts=child)
        versioning = aws.s3.BucketVersioning(
            f"{name}-{kind}-versioning", bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child)
        if lock_mode is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-{kind}-lock", bucket=bucket.id, object_lock_enabled="Enabled",
                rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode=lock_mode, days=args.backup_retention_days)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-{kind}-lifecycle", bucket=bucket.id,
            rules=[_abort_multipart_rule(), *rules],
            # Lifecycle rules on versions need versioning in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        if log_sources is None:
            policy = bucket.arn.apply(deny_insecure_transport)
        else:
            account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
            elb_account = aws.elb.get_service_account_output(
                region=args.region, opts=pulumi.InvokeOutputOptions(parent=self)).arn \
                if args.load_balancer_logs else None
            policy = pulumi.Output.all(bucket.arn, account, log_sources, elb_account).apply(
                lambda v: deny_insecure_transport(v[0], *log_delivery_statements(v[0], v[1], args.region, v[2]),
                                                  *([load_balancer_log_statement(v[0], v[1], v[3])] if v[3] else [])))
        self.policies[kind] = aws.s3.BucketPolicy(
            f"{name}-{kind}-tls-only", bucket=bucket.id, policy=policy,
            # Applying a policy before the public access block can race it on a new bucket.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        return bucket


# A log expired by the retention rule stays a week as a noncurrent version (a mistaken
# overwrite or delete stays recoverable that long), then is gone.
LOG_NONCURRENT_DAYS = 7


def _abort_multipart_rule() -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="abort-incomplete-multipart", status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
            days_after_initiation=7))


def _noncurrent_rule(days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="expire-noncurrent-versions", status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
            noncurrent_days=days))
