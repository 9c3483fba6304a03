"""The cluster placement's alarms (issue 19): the host's alert set as CloudWatch alarms
(configs/cloudwatch.py), RDS's own events and AWS Backup's failures, on one encrypted SNS topic
that the on-call subscribes to (docs/runbook.md).

The topic's key is a key of the stack's own: AWS's managed SNS key (`alias/aws/sns`) admits no
AWS service, so CloudWatch, RDS and AWS Backup could not publish to a topic encrypted with it, and
every alarm would be dropped without a word."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from configs import cloudwatch
from configs import postgres as pg

# The AWS services that publish to the topic, and whether their deliveries to SNS are
# documented with `aws:SourceAccount` (a condition on a key the request does not carry denies it,
# and the notification is dropped without a trace): CloudWatch's and RDS's topic policies are
# (CloudWatch user guide, "Setting up Amazon SNS notifications"; RDS user guide, "Granting
# permissions to publish notifications to an Amazon SNS topic"); AWS Backup documents a policy
# with its principal only ("Notification options with AWS Backup").
PUBLISHERS = {"cloudwatch.amazonaws.com": True, "events.rds.amazonaws.com": True, "backup.amazonaws.com": False}


def topic_key_policy(account: str) -> str:
    # The key's statement for the publishers has no condition (SNS developer guide, "Enable
    # compatibility between event sources from AWS services and encrypted topics"): they use the
    # key only through a publish the topic policy admitted, and a source condition that a
    # service's KMS request lacks would drop every notification it sends.
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": "kms:*", "Resource": "*"},
        {"Sid": "PublishersEncrypt", "Effect": "Allow", "Principal": {"Service": sorted(PUBLISHERS)},
         "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": "*"}]})


def topic_policy(topic_arn: str, account: str) -> str:
    conditioned = sorted(s for s, documented in PUBLISHERS.items() if documented)
    unconditioned = sorted(s for s, documented in PUBLISHERS.items() if not documented)
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountPublishesAndManages", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
         "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:SetTopicAttributes",
                    "sns:ListSubscriptionsByTopic"], "Resource": topic_arn},
        {"Sid": "ServicesOfThisAccountPublish", "Effect": "Allow", "Principal": {"Service": conditioned},
         "Action": "sns:Publish", "Resource": topic_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
        {"Sid": "BackupPublishes", "Effect": "Allow", "Principal": {"Service": unconditioned},
         "Action": "sns:Publish", "Resource": topic_arn},
        {"Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": topic_arn,
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


# What RDS reports by itself that the host's backup and failover alerts watched for.
RDS_EVENT_CATEGORIES = ["availability", "backup", "failover", "failure", "low storage", "maintenance", "recovery"]


@dataclass
class ClusterAlarmsArgs:
    name_prefix: str
    load_balancer_suffix: pulumi.Input[str]
    target_group_suffix: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    # name -> (its ECS service name, minimum tasks)
    services: Mapping[str, tuple[pulumi.Input[str], int]]
    database_id: pulumi.Input[str]
    database_class: str
    storage_gb: int
    cache_nodes: Sequence[pulumi.Input[str]]
    certificate_arn: pulumi.Input[str]


class ClusterAlarms(pulumi.ComponentResource):
    topic: aws.sns.Topic

    def __init__(self, name: str, args: ClusterAlarmsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ClusterAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        key = aws.kms.Key(f"{name}-topic-key", description=f"{args.name_prefix} alarm topic",
                          enable_key_rotation=True, deletion_window_in_days=30,
                          policy=account.apply(topic_key_policy), opts=child)
        self.topic = aws.sns.Topic(f"{name}-topic", name_prefix=f"{args.name_prefix}-alarms-",
                                   kms_master_key_id=key.arn, opts=child)
        aws.sns.TopicPolicy(f"{name}-topic-policy", arn=self.topic.arn,
                            policy=pulumi.Output.all(self.topic.arn, account).apply(lambda v: topic_policy(*v)),
                            opts=child)
        aws.rds.EventSubscription(
            f"{name}-database-events", name_prefix=f"{args.name_prefix}-postgres-", sns_topic=self.topic.arn,
            source_type="db-instance", source_ids=[args.database_id], event_categories=RDS_EVENT_CATEGORIES,
            opts=child)
        for alarm in cloudwatch.alarms(
                load_balancer=args.load_balancer_suffix, target_group=args.target_group_suffix,
                cluster=args.cluster_name, services=args.services, database=args.database_id,
                database_memory_mb=pg.RDS_INSTANCE_MEMORY_MB[args.database_class], storage_gb=args.storage_gb,
                cache_nodes=args.cache_nodes, certificate_arn=args.certificate_arn):
            aws.cloudwatch.MetricAlarm(
                f"{name}-{alarm.name}", name=f"{args.name_prefix}-{alarm.name}",
                alarm_description=alarm.description,
                namespace=alarm.namespace, metric_name=alarm.metric, dimensions=dict(alarm.dimensions),
                comparison_operator=alarm.comparison, threshold=alarm.threshold,
                evaluation_periods=alarm.periods, datapoints_to_alarm=alarm.periods, period=alarm.period_s,
                statistic=alarm.statistic, extended_statistic=alarm.extended_statistic,
                treat_missing_data=alarm.missing, alarm_actions=[self.topic.arn], ok_actions=[self.topic.arn],
                opts=child)
        self.register_outputs({})
