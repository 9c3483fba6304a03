"""staging/production: private, encrypted, versioned S3 buckets and the API's S3 identity."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

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


def deny_insecure_transport(bucket_arn: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }],
    })


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
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    # The write-only identity of the backup container (and pgBackRest's archive-push).
    backup_access_key_id: pulumi.Output[str]
    backup_secret_access_key: pulumi.Output[str]
    bucket_resources: dict[str, aws.s3.Bucket]

    def __init__(self, name: str, args: ObjectStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ObjectStorage", name, None, opts)
        self.region = args.region
        self.endpoint = f"https://s3.{args.region}.amazonaws.com"
        self.bucket_resources: dict[str, aws.s3.Bucket] = {}
        self.buckets = {}
        for kind in BUCKETS:
            bucket = self._bucket(name, kind, args)
            self.bucket_resources[kind] = bucket
            self.buckets[kind] = bucket.bucket

        child = pulumi.ResourceOptions(parent=self)
        aws.s3.BucketCorsConfiguration(
            f"{name}-images-cors", bucket=self.bucket_resources["images"].id,
            cors_rules=[aws.s3.BucketCorsConfigurationCorsRuleArgs(
                allowed_origins=list(args.site_origins),
                allowed_methods=["GET", "HEAD", "PUT"],
                allowed_headers=["*"],
                expose_headers=["ETag"],
                max_age_seconds=3600,
            )], opts=child)

        user = aws.iam.User(f"{name}-api", path="/storiesofsoftware/", opts=child)
        aws.iam.UserPolicy(
            f"{name}-api-objects", user=user.name,
            policy=pulumi.Output.all(self.bucket_resources["content"].arn,
                                     self.bucket_resources["images"].arn).apply(
                lambda arns: api_policy(*arns)), opts=child)
        key = aws.iam.AccessKey(f"{name}-api-key", user=user.name, opts=child)
        self.access_key_id = key.id
        self.secret_access_key = pulumi.Output.secret(key.secret)

        # Keys, not the instance role: IMDS is out of the containers' reach (hop limit 1).
        writer = aws.iam.User(f"{name}-backup-writer", path="/storiesofsoftware/", opts=child)
        aws.iam.UserPolicy(
            f"{name}-backup-writer-policy", user=writer.name,
            policy=self.bucket_resources["backups"].arn.apply(backup_writer_policy), opts=child)
        writer_key = aws.iam.AccessKey(f"{name}-backup-writer-key", user=writer.name, opts=child)
        self.backup_access_key_id = writer_key.id
        self.backup_secret_access_key = pulumi.Output.secret(writer_key.secret)
        self.register_outputs({})

    def _bucket(self, name: str, kind: str, args: ObjectStorageArgs) -> aws.s3.Bucket:
        child = pulumi.ResourceOptions(parent=self)
        locked = kind == "backups" and args.backup_lock_mode is not None
        bucket = aws.s3.Bucket(
            f"{name}-{kind}", bucket_prefix=f"{args.name_prefix}-{kind}-",
            object_lock_enabled=locked or None,
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
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"),
                bucket_key_enabled=True)],
            opts=child)
        versioning = aws.s3.BucketVersioning(
            f"{name}-{kind}-versioning", bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child)
        rules = [
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="abort-incomplete-multipart", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=7)),
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-noncurrent-versions", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    # backups: a superseded version lives as long as any backup does.
                    noncurrent_days=args.backup_retention_days if kind == "backups" else args.noncurrent_days)),
        ]
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
        if locked:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-{kind}-lock", bucket=bucket.id, object_lock_enabled="Enabled",
                rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode=args.backup_lock_mode, days=args.backup_retention_days)),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-{kind}-lifecycle", bucket=bucket.id,
            rules=rules,
            # Lifecycle rules on versions need versioning in place first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]))
        aws.s3.BucketPolicy(
            f"{name}-{kind}-tls-only", bucket=bucket.id,
            policy=bucket.arn.apply(deny_insecure_transport),
            # Applying a policy before the public access block can race it on a new bucket.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[block]))
        return bucket
