"""Issue 18, findings 1 and 2: the network trail (VPC flow logs) and the access trail of every
data bucket, both in a log bucket hardened like the others that logs nowhere itself."""

from __future__ import annotations

import json

import pytest

from offline import harness
from testsupport.plans import plan_for

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
ACCOUNT = "123456789012"


def _log_policy(plan) -> dict:
    return json.loads(plan.one("aws:s3/bucketPolicy:BucketPolicy", "storage-logs-tls-only").inputs["policy"])


def test_every_data_bucket_logs_its_requests_to_the_log_bucket_which_logs_nowhere(cloud_plan):
    buckets = {b.urn: b.name for b in cloud_plan.of_type(BUCKET)}
    log_bucket = cloud_plan.one(BUCKET, "storage-logs")
    targets = {}
    for logging in cloud_plan.of_type(LOGGING):
        (source,) = [buckets[u] for u in logging.property_dependencies["bucket"]]
        (target,) = [buckets[u] for u in logging.property_dependencies["targetBucket"]]
        assert target == "storage-logs"
        targets[source] = logging.inputs["targetPrefix"]
        assert logging.inputs["targetObjectKeyFormat"] == {"partitionedPrefix": {"partitionDateSource": "EventTime"}}
    # No loop: the log bucket's own requests are not logged into itself.
    assert set(targets) == set(buckets.values()) - {log_bucket.name}
    assert targets["storage-backups"] == "s3-access/backups/"
    assert len(set(targets.values())) == len(targets), "two buckets share a prefix"


def test_log_delivery_may_write_only_under_its_prefix_and_only_for_this_account_s_sources(cloud_plan):
    statements = {s["Sid"]: s for s in _log_policy(cloud_plan)["Statement"]}
    # Each bucket's access logs may land under its own prefix only, from that bucket only.
    access = {sid: s for sid, s in statements.items() if sid.startswith("S3ServerAccessLogs")}
    assert {(s["Resource"], s["Condition"]["ArnLike"]["aws:SourceArn"]) for s in access.values()} == {
        (f"arn:aws:s3:::storage-logs/s3-access/{kind}/*", f"arn:aws:s3:::storage-{kind}")
        for kind in ("content", "images", "backups")}
    for grant in access.values():
        assert grant["Action"] == "s3:PutObject"
        assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
        assert grant["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    write = statements["FlowLogsWrite"]
    assert write["Resource"] == f"arn:aws:s3:::storage-logs/flow-logs/AWSLogs/{ACCOUNT}/*"
    assert write["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT,
                                                  "s3:x-amz-acl": "bucket-owner-full-control"}
    assert statements["FlowLogsAclCheck"]["Action"] == ["s3:GetBucketAcl", "s3:ListBucket"]
    # Nothing else is allowed to anyone: every other statement denies.
    others = set(statements) - set(access) - {"FlowLogsWrite", "FlowLogsAclCheck"}
    assert {statements[s]["Effect"] for s in others} == {"Deny"}


def test_every_vpc_has_a_flow_log_of_all_traffic_into_the_log_bucket(cloud_plan):
    vpcs = cloud_plan.of_type("aws:ec2/vpc:Vpc")
    logs = cloud_plan.of_type(FLOW_LOG)
    assert {u for f in logs for u in f.property_dependencies["vpcId"]} == {v.urn for v in vpcs}
    for flow in logs:
        assert flow.inputs["trafficType"] == "ALL"
        assert flow.inputs["logDestinationType"] == "s3"
        assert flow.inputs["logDestination"] == "arn:aws:s3:::storage-logs/flow-logs/"
        assert flow.inputs["maxAggregationInterval"] == 60
        # Created once the bucket policy admits the delivery service (else AWS attaches its own).
        policy = cloud_plan.one("aws:s3/bucketPolicy:BucketPolicy", "storage-logs-tls-only")
        assert policy.urn in flow.depends_on


def test_log_retention_comes_from_settings_per_stack():
    def retention(plan) -> int:
        life = plan.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "storage-logs-lifecycle")
        days = {r["expiration"]["days"] for r in life.inputs["rules"] if r.get("expiration")}
        assert len(days) == 1
        return days.pop()

    assert retention(plan_for("staging")) == 90
    assert retention(plan_for("production")) == 365
    assert retention(harness.run("staging", overrides={"logRetentionDays": 30})) == 30


def test_log_retention_is_validated_and_not_for_dev():
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"logRetentionDays on stack staging: expected an integer from 1 to 3650"):
        harness.run("staging", overrides={"logRetentionDays": 0})
    with pytest.raises(ConfigError, match=r"logRetentionDays on stack dev: expected no value"):
        harness.run("dev", overrides={"logRetentionDays": 30})


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_only_the_logs_expire_in_the_log_bucket(stack):
    """The log bucket also holds the load balancer's trust store bundle: a rule over every prefix
    expired it after `logRetentionDays`. Every log writer's prefix expires; the bundle does not."""
    from components.cluster_entry import TRUST_STORE_KEY
    from components.object_storage import LOG_PREFIXES
    from testsupport.plans import cluster_plan_for

    plan = cluster_plan_for(stack)
    life = plan.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "storage-logs-lifecycle")
    expiring = [r["filter"]["prefix"] for r in life.inputs["rules"] if r.get("expiration")]
    assert sorted(expiring) == sorted(LOG_PREFIXES)
    assert not [p for p in expiring if TRUST_STORE_KEY.startswith(p)]
    flow = plan.one("aws:ec2/flowLog:FlowLog").inputs["logDestination"]
    balancer = plan.one("aws:lb/loadBalancer:LoadBalancer").inputs["accessLogs"]["prefix"]
    s3_logs = {r.inputs["targetPrefix"] for r in plan.of_type("aws:s3/bucketLogging:BucketLogging")}
    assert s3_logs
    for written in [flow.split(":::", 1)[1].split("/", 1)[1], f"{balancer}/AWSLogs/", *s3_logs]:
        assert any(written.startswith(p) for p in expiring), written
