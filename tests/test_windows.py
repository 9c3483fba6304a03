"""The cluster's maintenance, backup and snapshot windows against each other
(policy/windows.py), on every cloud stack's plan, and AWS Backup's notifications."""

from __future__ import annotations

import pytest

from offline.harness import unwrap
from policy.windows import cache_problems, cron_daily, daily, database_problems, weekly
from testsupport.plans import CLOUD_STACKS, cluster_plan_for

# What AWS Backup sends to SNS (AWS Backup Developer Guide, "Using Amazon SNS to track AWS
# Backup events"): a failed or expired backup job is a BACKUP_JOB_COMPLETED with State FAILED,
# EXPIRED or ABORTED; BACKUP_JOB_FAILED and BACKUP_JOB_EXPIRED are in the API's enum but sent
# to no topic.
SNS_EVENTS = {"BACKUP_JOB_STARTED", "BACKUP_JOB_COMPLETED", "COPY_JOB_STARTED", "COPY_JOB_SUCCESSFUL",
              "COPY_JOB_FAILED", "RESTORE_JOB_STARTED", "RESTORE_JOB_COMPLETED", "RECOVERY_POINT_MODIFIED"}


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_no_window_blocks_another(stack):
    plan = cluster_plan_for(stack)
    db = plan.one("aws:rds/instance:Instance").inputs
    rules = [rule for p in plan.of_type("aws:backup/plan:Plan") for rule in unwrap(p.inputs["rules"])]
    assert rules, "the database has an AWS Backup plan"
    jobs = [(rule["schedule"], rule["startWindow"]) for rule in rules]
    assert database_problems(db["backupWindow"], db["maintenanceWindow"], jobs) == []
    cache = plan.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert cache_problems(cache["snapshotWindow"], cache["maintenanceWindow"]) == []


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_failed_backup_reaches_the_topic(stack):
    events = set(cluster_plan_for(stack).one("aws:backup/vaultNotifications:VaultNotifications")
                 .inputs["backupVaultEvents"])
    assert events <= SNS_EVENTS, events - SNS_EVENTS
    assert {"BACKUP_JOB_COMPLETED", "COPY_JOB_FAILED", "RESTORE_JOB_COMPLETED"} <= events


def test_the_windows_model():
    assert daily("23:30-00:30")[0] == (1410, 1470)
    assert weekly("sun:23:30-mon:00:30") == [(6 * 1440 + 1410, 6 * 1440 + 1470)]
    assert cron_daily("cron(15 3 * * ? *)", 60)[6] == (6 * 1440 + 195, 6 * 1440 + 255)
    with pytest.raises(ValueError, match="only daily"):
        cron_daily("cron(0 5 ? * SUN *)", 60)


@pytest.mark.parametrize("backup,maintenance,jobs,expected", [
    # The design before: AWS Backup at 03:15 for an hour meets Sunday's 03:30 maintenance.
    ("02:00-03:00", "sun:03:30-sun:04:30", [("cron(15 3 * * ? *)", 60)], "meets RDS's maintenance"),
    # Within the hour before it is enough.
    ("02:00-03:00", "sun:05:00-sun:06:00", [("cron(0 4 * * ? *)", 60)], "or the hour before it"),
    # During the automated backup window.
    ("02:00-03:00", "sun:05:00-sun:06:00", [("cron(30 1 * * ? *)", 60)], "or its backup window"),
    ("03:00-04:00", "sun:03:30-sun:04:30", [], "overlaps its maintenance window"),
    # Across the week's end: Sunday's job against Monday 00:30.
    ("12:00-13:00", "mon:00:30-mon:01:00", [("cron(0 0 * * ? *)", 60)], "meets RDS's maintenance"),
])
def test_a_blocked_window_is_found(backup, maintenance, jobs, expected):
    problems = database_problems(backup, maintenance, jobs)
    assert len(problems) == 1 and expected in problems[0]


def test_a_cache_snapshot_during_maintenance_is_found():
    assert cache_problems("04:00-05:00", "sun:04:30-sun:05:30") != []
    assert cache_problems("01:00-02:00", "sun:04:30-sun:05:30") == []


def test_the_runbooks_subscription_keeps_alarms_and_failed_jobs_only():
    """The filter policy docs/runbook.md gives the on-call's subscription, applied by moto's SNS:
    alarms (no State attribute) and failed, expired or aborted jobs pass; finished ones do not."""
    import json
    import re

    import boto3
    from moto import mock_aws

    from testsupport.tools import ROOT

    runbook = (ROOT / "docs" / "runbook.md").read_text()
    attributes = json.loads(re.search(r"--attributes '([^']+)'", runbook)[1])
    with mock_aws():
        sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="alarms")["TopicArn"]
        queue = sqs.create_queue(QueueName="oncall")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn,
                      Attributes={**attributes, "RawMessageDelivery": "true"})
        sns.publish(TopicArn=topic, Message="ALARM: 5xx on the edge")
        for state in ("CREATED", "COMPLETED", "FAILED", "EXPIRED", "ABORTED"):
            sns.publish(TopicArn=topic, Message=f"backup job {state}",
                        MessageAttributes={"State": {"DataType": "String", "StringValue": state},
                                           "EventType": {"DataType": "String", "StringValue": "BACKUP_JOB"}})
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in received) == [
        "ALARM: 5xx on the edge", "backup job ABORTED", "backup job EXPIRED", "backup job FAILED"]
