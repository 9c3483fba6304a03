"""The AWS half of staging and production checked by the real AWS provider.

The offline plan's AWS resources, translated by `tools/terraform.py`, go to Terraform 1.11 with
hashicorp/aws 5.100.0 (the provider code pulumi-aws bridges, one major version back):
`terraform validate` runs the provider's own validators, and an apply against moto's server on
loopback followed by a second plan shows that every resource moto implements is created and
that nothing shows a perpetual diff.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from offline import canned
from testsupport.plans import CLOUD_STACKS, plan_for
from testsupport.servers import moto_server
from testsupport.tools import IN_CI, require_tool
from tools import terraform as tf

# Services of planned resources that moto does not implement: left out of the apply, with why.
MOTO_LACKS = {
    "aws_dlm_lifecycle_policy": "moto has no Data Lifecycle Manager (DLM) backend",
    "aws_flow_log": "moto's CreateFlowLogs reads an S3 destination's prefix as part of the bucket name "
                    "(AWS documents arn:aws:s3:::bucket/prefix/)",
}
# Differences the second plan shows only because moto does not keep what AWS keeps; each is
# shown to be moto's in test_moto_limitations_are_moto_s, so a moto that fixes one fails there.
MOTO_PERPETUAL = {
    ("aws_instance", "disable_api_termination"): "moto's RunInstances ignores DisableApiTermination",
    ("aws_s3_bucket_logging", "target_object_key_format"):
        "moto's GetBucketLogging leaves out the TargetObjectKeyFormat it was given",
}
# What pulumi-aws 7 says differently from provider 5.100.0 (the translation gives the older shape).
EXPECTED_RESHAPED = {
    ("aws_dlm_lifecycle_policy", "policyDetails.schedules[0].createRule.times"),
    ("aws_instance", "primaryNetworkInterface"),
}


def _terraform() -> str:
    return require_tool("terraform")


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("terraform")


@pytest.fixture(scope="session")
def tfrc(workdir) -> Path:
    _terraform()
    root = tf.mirror()
    if root is None and IN_CI:
        pytest.fail("no filesystem mirror of hashicorp/aws " + tf.PROVIDER_VERSION + " on this machine")
    return tf.cli_config(workdir, root)


def _init(directory: Path, tfrc: Path) -> None:
    """`terraform init` once per directory (the provider is linked from the mirror, not copied)."""
    result = tf.terraform(["init", "-input=false", "-no-color"], directory, tfrc)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def schema(workdir, tfrc) -> dict:
    return tf.provider_schema(workdir / "schema", tfrc)


def _validate(config: dict, directory: Path, tfrc: Path) -> list[dict]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.tf.json").write_text(json.dumps(config, indent=2))
    if not (directory / ".terraform").exists():
        _init(directory, tfrc)
    result = tf.terraform(["validate", "-json", "-no-color"], directory, tfrc)
    report = json.loads(result.stdout)
    return [d for d in report["diagnostics"] if d["severity"] == "error"]


def _errors(config_linked: dict, config_isolated: dict, directory: Path, tfrc: Path) -> list[str]:
    """Every error validate reports, linked or isolated. Linked, validate checks references but
    skips what depends on a rejected resource; isolated (references as planned values), nothing
    depends on anything, so every resource is checked."""
    found = []
    for kind, config in (("linked", config_linked), ("isolated", config_isolated)):
        for d in _validate(config, directory / kind, tfrc):
            found.append(f"{d['summary']}: {d.get('detail', '')} @ {d.get('address', '')}"
                         f"{d.get('range', {}).get('start', {}).get('line', '')}")
    return found


# ------------------------------------------------------------------------------ translation

@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_planned_aws_resource_is_translated_and_nothing_is_lost(stack, schema):
    plan = plan_for(stack)
    translation = tf.translate(plan, schema)
    aws = [r for r in plan.resources if r.custom and r.type.startswith("aws:")]
    assert len(translation.addresses) == len(aws) and len(aws) > 80
    declared = sum(len(v) for v in translation.config["resource"].values())
    assert declared == len(aws), "two planned resources share a Terraform address"
    # Nothing dropped; what the newer provider line says differently is listed and reshaped.
    assert translation.dropped == []
    assert {(a.split(".")[0], path) for a, path, _ in translation.reshaped} == EXPECTED_RESHAPED
    # References between resources are Terraform references (also inside policy documents).
    text = json.dumps(translation.config)
    assert "${aws_iam_role.host-dlm-role.arn}" in text
    assert "${aws_s3_bucket.storage-backups.arn}/*" in text
    assert "${aws_vpc.network-vpc.id}" in text
    # The program's explicit order: S3 refuses a logging target whose policy does not admit it yet.
    logging = translation.config["resource"]["aws_s3_bucket_logging"]["storage-backups-access-log"]
    assert "aws_s3_bucket_policy.storage-logs-tls-only" in logging["depends_on"]
    # Autonaming as Pulumi would: only names the program leaves to the engine.
    assert {field for _, field, _ in translation.autonamed} <= {"name", "bucket"}


# ------------------------------------------------------------------------------ validate

@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_terraform_validate_finds_no_error(stack, schema, workdir, tfrc):
    plan = plan_for(stack)
    errors = _errors(tf.translate(plan, schema).config, tf.translate(plan, schema, isolated=True).config,
                     workdir / f"validate-{stack}", tfrc)
    assert errors == []


def test_validate_catches_planted_bad_values(schema, workdir, tfrc):
    """An enum, a CIDR upstream of other resources, a pattern like the DLM description's, and a
    bad value downstream of the broken CIDR: each is reported."""
    plan = plan_for("production")
    linked = tf.translate(plan, schema).config
    isolated = tf.translate(plan, schema, isolated=True).config
    planted = {
        ("aws_dlm_lifecycle_policy", "host-snapshots", "description"): "sos-production data volume, daily",
        ("aws_s3_bucket_versioning", "storage-backups-versioning", "versioning_configuration"): [{"status": "On"}],
        ("aws_vpc", "network-vpc", "cidr_block"): "10.42.0.300/16",
        ("aws_subnet", "network-public", "cidr_block"): "10.42.1.0/33",
    }
    for config in (linked, isolated):
        for (kind, name, attr), value in planted.items():
            assert name in config["resource"][kind], (kind, sorted(config["resource"][kind]))
            config["resource"][kind][name][attr] = copy.deepcopy(value)
    errors = _errors(linked, isolated, workdir / "planted", tfrc)
    text = "\n".join(errors)
    assert "invalid value for description" in text
    assert 'expected versioning_configuration.0.status to be one of ["Enabled" "Suspended" "Disabled"], got On' in text \
        or "got On" in text
    assert "10.42.0.300/16" in text
    assert "10.42.1.0/33" in text, "the subnet below the broken VPC was not checked"


# ------------------------------------------------------------------------------ apply against moto

def _moto(workdir: Path) -> tuple[subprocess.Popen, int]:
    binary = require_tool("moto_server")
    # The planned AMI exists in this moto (the program looks it up by Canonical's filter), and
    # AWS's managed policies are loaded (the program attaches two).
    amis = workdir / "amis.json"
    amis.write_text(json.dumps([{
        "ami_id": canned.AMI_ID, "state": "available", "public": True, "owner_id": "099720109477",
        "image_location": f"amazon/{canned.AMI_NAME}", "root_device_type": "ebs",
        "root_device_name": "/dev/sda1", "description": "Ubuntu 24.04", "image_type": "machine",
        "architecture": "x86_64", "name": canned.AMI_NAME, "virtualization_type": "hvm",
        "hypervisor": "xen", "sriov": "simple"}]))
    proc, port = moto_server(binary, workdir / "moto.log", env={
        "MOTO_AMIS_PATH": str(amis), "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"})
    return proc, port


def _against_moto(config: dict, port: int) -> dict:
    config = copy.deepcopy(config)
    for kind in MOTO_LACKS:
        config["resource"].pop(kind, None)
    url = f"http://127.0.0.1:{port}"
    config["provider"]["aws"].update(
        access_key="testing", secret_key="testing", skip_credentials_validation=True,
        skip_requesting_account_id=True, skip_metadata_api_check=True, s3_use_path_style=True,
        endpoints=[{service: url for service in ("ec2", "iam", "s3", "sts")}])
    return config


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_apply_against_moto_then_the_second_plan_is_empty(stack, schema, workdir, tfrc):
    plan = plan_for(stack)
    translation = tf.translate(plan, schema)
    # Nothing left out but what moto lacks; each planned DLM policy is one of those.
    assert set(translation.config["resource"]) - set(MOTO_LACKS)
    directory = workdir / f"apply-{stack}"
    directory.mkdir()
    proc, port = _moto(workdir)
    try:
        config = _against_moto(translation.config, port)
        (directory / "main.tf.json").write_text(json.dumps(config, indent=2))
        _init(directory, tfrc)
        applied = tf.terraform(["apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=10"],
                               directory, tfrc)
        assert applied.returncode == 0, applied.stdout[-3000:] + applied.stderr[-6000:]
        state = json.loads(tf.terraform(["show", "-json"], directory, tfrc).stdout)
        created = {f"{r['type']}.{r['name']}" for r in state["values"]["root_module"]["resources"]}
        expected = {a for a in translation.addresses.values() if a.split(".")[0] not in MOTO_LACKS}
        assert created == expected
        second = tf.terraform(["plan", "-input=false", "-no-color", "-out=second.plan"], directory, tfrc)
        assert second.returncode == 0, second.stderr
        shown = json.loads(tf.terraform(["show", "-json", "second.plan"], directory, tfrc).stdout)
        diffs = []
        for change in shown.get("resource_changes", []):
            actions = change["change"]["actions"]
            if actions == ["no-op"]:
                continue
            before, after = change["change"]["before"] or {}, change["change"]["after"] or {}
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            unexplained = [k for k in changed if (change["type"], k) not in MOTO_PERPETUAL]
            if unexplained or actions != ["update"]:
                diffs.append((change["address"], actions, unexplained or changed))
        assert diffs == [], "perpetual diff: " + json.dumps(diffs)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory / ".terraform", ignore_errors=True)


def test_moto_limitations_are_moto_s():
    """Each exception above is moto's, shown with boto3 against moto itself: if moto learns one,
    this fails and the exception must go."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        image = ec2.describe_images()["Images"][0]["ImageId"]
        started = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, DisableApiTermination=True)
        instance = started["Instances"][0]["InstanceId"]
        kept = ec2.describe_instance_attribute(InstanceId=instance, Attribute="disableApiTermination")
        assert kept["DisableApiTermination"]["Value"] is False, "moto now keeps DisableApiTermination"
        dlm = boto3.client("dlm", region_name="us-east-1")
        with pytest.raises(ClientError, match="Not yet implemented"):
            dlm.get_lifecycle_policies()
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sos-flow-logs")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        made = ec2.create_flow_logs(ResourceIds=[vpc], ResourceType="VPC", TrafficType="ALL",
                                    LogDestinationType="s3", LogDestination="arn:aws:s3:::sos-flow-logs/flow-logs/")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="sos-logged")
        s3.put_bucket_acl(Bucket="sos-flow-logs", GrantWrite='uri="http://acs.amazonaws.com/groups/s3/LogDelivery"',
                          GrantReadACP='uri="http://acs.amazonaws.com/groups/s3/LogDelivery"')
        s3.put_bucket_logging(Bucket="sos-logged", BucketLoggingStatus={"LoggingEnabled": {
            "TargetBucket": "sos-flow-logs", "TargetPrefix": "s3-access/",
            "TargetObjectKeyFormat": {"PartitionedPrefix": {"PartitionDateSource": "EventTime"}}}})
        kept = s3.get_bucket_logging(Bucket="sos-logged")["LoggingEnabled"]
        assert "TargetObjectKeyFormat" not in kept, "moto now keeps a logging target's key format"
        assert made["Unsuccessful"] and "sos-flow-logs/flow-logs/ does not exist" in made["Unsuccessful"][0]["Error"]["Message"], \
            "moto now takes a prefix in a flow log's S3 destination"
