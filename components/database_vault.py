"""The cluster placement's database snapshots under the backups bucket's policy (issue 19): a
daily AWS Backup snapshot of the RDS instance, kept `backupRetentionDays` in a vault of the same
account and region, locked as the bucket is (compliance in production: nobody, the account's
root included, can delete a snapshot early or lift the lock; governance on staging). RDS's own
automated backups (point-in-time recovery) go with the instance if it is ever deleted; these
do not. Failures reach the alarm topic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

BACKUP_ROLE_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
)
# The lock admits any retention the settings admit on the cluster (7 to 35 days), so a change
# of backupRetentionDays never meets a vault that refuses it.
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 7, 35
# Compliance mode takes hold after this cooling-off time; until then the lock can be removed.
COMPLIANCE_GRACE_DAYS = 3
# What AWS Backup sends to SNS: a failed, expired or aborted backup job is a BACKUP_JOB_COMPLETED
# whose `State` attribute says so (BACKUP_JOB_FAILED and _EXPIRED exist in the API but reach no
# topic); restores likewise. A subscription keeps only failures with the filter policy in
# docs/runbook.md.
FAILURE_EVENTS = ["BACKUP_JOB_COMPLETED", "COPY_JOB_FAILED", "RESTORE_JOB_COMPLETED"]


@dataclass
class DatabaseVaultArgs:
    name_prefix: str
    database_arn: pulumi.Input[str]
    retention_days: int
    # production: compliance mode, as the backups bucket's Object Lock.
    compliance: bool
    topic_arn: pulumi.Input[str]
    protect: bool


class DatabaseVault(pulumi.ComponentResource):
    vault: aws.backup.Vault

    def __init__(self, name: str, args: DatabaseVaultArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:DatabaseVault", name, None, opts)
        if not MIN_RETENTION_DAYS <= args.retention_days <= MAX_RETENTION_DAYS:
            raise ValueError(f"retention {args.retention_days} days: the vault locks {MIN_RETENTION_DAYS} to "
                             f"{MAX_RETENTION_DAYS}")
        child = pulumi.ResourceOptions(parent=self)
        self.vault = aws.backup.Vault(
            f"{name}-vault", name=f"{args.name_prefix}-postgres",
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        aws.backup.VaultLockConfiguration(
            f"{name}-lock", backup_vault_name=self.vault.name, min_retention_days=MIN_RETENTION_DAYS,
            max_retention_days=MAX_RETENTION_DAYS,
            # Without a grace period the lock is governance mode: an administrator may lift it.
            changeable_for_days=COMPLIANCE_GRACE_DAYS if args.compliance else None,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        role = aws.iam.Role(f"{name}-role", description=f"{args.name_prefix}: AWS Backup of the database",
                            assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
                                "Effect": "Allow", "Action": "sts:AssumeRole",
                                "Principal": {"Service": "backup.amazonaws.com"}}]}), opts=child)
        grants = [aws.iam.RolePolicyAttachment(f"{name}-role-{i}", role=role.name, policy_arn=policy, opts=child)
                  for i, policy in enumerate(BACKUP_ROLE_POLICIES)]
        plan = aws.backup.Plan(
            f"{name}-plan", name=f"{args.name_prefix}-postgres-daily",
            rules=[aws.backup.PlanRuleArgs(
                rule_name="daily", target_vault_name=self.vault.name,
                # AWS Backup starts no RDS snapshot during the instance's backup window (02:00-03:00)
                # or within the hour before and during its maintenance (Sunday 03:30-04:30): 05:00
                # to 06:00 clears both every day (tests/test_windows.py).
                schedule="cron(0 5 * * ? *)", start_window=60, completion_window=360,
                lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=args.retention_days))],
            opts=child)
        aws.backup.Selection(f"{name}-selection", name=f"{args.name_prefix}-postgres", plan_id=plan.id,
                             iam_role_arn=role.arn, resources=[args.database_arn],
                             # AWS Backup assumes the role at once; IAM is eventually consistent.
                             opts=pulumi.ResourceOptions(parent=self, depends_on=grants))
        aws.backup.VaultNotifications(f"{name}-notifications", backup_vault_name=self.vault.name,
                                      sns_topic_arn=args.topic_arn, backup_vault_events=FAILURE_EVENTS, opts=child)
        self.register_outputs({})
