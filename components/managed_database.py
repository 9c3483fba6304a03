"""The cluster placement's PostgreSQL 16 (issue 19): RDS, Multi-AZ in production.

Encrypted, never public, deletion-protected with a final snapshot, automated backups with
point-in-time recovery, TLS required, its master password kept by RDS in Secrets Manager (never
in Pulumi's state), and the parameter group rendered from the same tuning rules as the host's
postgresql.conf (configs/postgres.py `rds_parameters`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.cluster_network import reachable_from
from configs import postgres as pg

# The major only: RDS creates its default minor for it (often not the newest) and, with
# automatic minor upgrades, moves it on in the maintenance window; the provider takes a prefix
# and ignores the minor (`engineVersionActual` says which one runs). A pinned minor would make every `up` after
# AWS's first upgrade ask for a downgrade, and cannot be created once AWS retires it.
ENGINE_VERSION = "16"
PARAMETER_FAMILY = "postgres16"
# Not `postgres`: FSBP RDS.25 asks for a master user name of one's own.
MASTER_USER = "sos_admin"
# What the instance publishes to CloudWatch Logs (the server's log and its major upgrades').
LOG_EXPORTS = ("postgresql", "upgrade")



@dataclass
class ManagedDatabaseArgs:
    name_prefix: str
    instance_class: str
    allocated_storage_gb: int
    multi_az: bool
    # At least 7 days: point-in-time recovery reaches that far back.
    backup_retention_days: int
    subnet_ids: Sequence[pulumi.Input[str]]
    vpc_id: pulumi.Input[str]
    # Security groups of what may connect (the tasks).
    client_security_group_ids: Sequence[pulumi.Input[str]]
    protect: bool
    log_retention_days: int


class ManagedDatabase(pulumi.ComponentResource):
    instance: aws.rds.Instance
    security_group: aws.ec2.SecurityGroup
    ready: list[pulumi.Resource]
    # The Secrets Manager secret RDS keeps the master password in.
    master_secret_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ManagedDatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ManagedDatabase", name, None, opts)
        if args.instance_class not in pg.RDS_INSTANCE_MEMORY_MB:
            raise ValueError(f"{args.instance_class}: not one of {', '.join(pg.RDS_INSTANCE_MEMORY_MB)}")
        if args.backup_retention_days < 7:
            raise ValueError("point-in-time recovery needs at least 7 days of automated backups")
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=list(args.subnet_ids),
                                      description=f"{prefix} PostgreSQL: private subnets", opts=child)
        self.security_group, admitted = reachable_from(name, self, args.vpc_id, pg.PORT, "PostgreSQL", f"{prefix}-postgres",
                                             args.client_security_group_ids)
        parameters = aws.rds.ParameterGroup(
            f"{name}-params", family=PARAMETER_FAMILY,
            description=f"{prefix}: the host's tuning rules for {args.instance_class}",
            parameters=[aws.rds.ParameterGroupParameterArgs(name=key, value=value, apply_method=method)
                        for key, (value, method) in sorted(pg.rds_parameters(
                            pg.RDS_INSTANCE_MEMORY_MB[args.instance_class]).items())],
            # A new family or class needs a new group before the instance lets go of the old one.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False))
        monitoring = aws.iam.Role(
            f"{name}-monitoring-role", assume_role_policy=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                        "Principal": {"Service": "monitoring.rds.amazonaws.com"}}]}),
            description="RDS enhanced monitoring", opts=child)
        monitoring_grant = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring", role=monitoring.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole", opts=child)
        # The inputs given that replace the instance when they change (ForceNew in the provider).
        replaced_by: dict[str, object] = {"engine": "postgres", "storage_encrypted": True, "username": MASTER_USER}
        # A new suffix whenever an input that replaces the instance changes, back and forth
        # included (`pulumi up --replace` names it too, docs/runbook.md): the replacement is
        # created beside the old instance under its own identifier, and the snapshot RDS takes
        # when the old one is deleted gets its own name (a fixed one would exist already at a
        # second replacement, and RDS refuses that delete: DBSnapshotAlreadyExists).
        suffix = random.RandomId(f"{name}-final-snapshot", byte_length=4,
                                 keepers={"identifier_prefix": f"{prefix}-postgres-",
                                          **{k: str(v) for k, v in replaced_by.items()}}, opts=child)
        identifier = pulumi.Output.concat(f"{prefix}-postgres-", suffix.hex)
        # RDS creates the log groups it exports to without a retention (kept forever) unless they
        # exist first: named as RDS names them, before the instance (RDS user guide, "Publishing
        # PostgreSQL logs to Amazon CloudWatch Logs").
        log_groups = [aws.cloudwatch.LogGroup(
            f"{name}-logs-{kind}", name=identifier.apply(lambda i, kind=kind: f"/aws/rds/instance/{i}/{kind}"),
            retention_in_days=args.log_retention_days,
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=args.protect)) for kind in LOG_EXPORTS]
        self.instance = aws.rds.Instance(
            f"{name}-instance", identifier=identifier, **replaced_by,  # type: ignore[arg-type]
            engine_version=ENGINE_VERSION, instance_class=args.instance_class,
            allocated_storage=args.allocated_storage_gb, max_allocated_storage=args.allocated_storage_gb * 4,
            storage_type="gp3",
            db_subnet_group_name=subnets.name, vpc_security_group_ids=[self.security_group.id],
            parameter_group_name=parameters.name, publicly_accessible=False, multi_az=args.multi_az,
            manage_master_user_password=True,
            iam_database_authentication_enabled=True,
            backup_retention_period=args.backup_retention_days, backup_window="02:00-03:00",
            maintenance_window="sun:03:30-sun:04:30", copy_tags_to_snapshot=True,
            deletion_protection=True, skip_final_snapshot=False,
            final_snapshot_identifier=pulumi.Output.concat(f"{prefix}-postgres-final-", suffix.hex),
            auto_minor_version_upgrade=True, enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            monitoring_interval=60, monitoring_role_arn=monitoring.arn,
            performance_insights_enabled=True,
            tags={"Name": f"{prefix}-postgres"},
            # RDS checks the monitoring role's permissions as it creates the instance.
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect,
                                        depends_on=[monitoring_grant, *log_groups]))
        self.master_secret_arn = self.instance.master_user_secrets.apply(
            lambda secrets: secrets[0].secret_arn if secrets else "")
        # Reachable: the server and the rule that admits the tasks.
        self.ready = [self.instance, *admitted]
        self.register_outputs({})
