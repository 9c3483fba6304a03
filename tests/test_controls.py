"""The FSBP controls table (tools/controls.py, README "Security controls") against the plans:
each status is what the program means it to be, each check can fail, the README is current, and
an outside scanner (checkov, over the same plan translated for the AWS provider) finds nothing
but the trade-offs the table explains."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from offline.harness import Plan, Registration
from testsupport.plans import plan_for
from testsupport.tools import ROOT, require_tool
from tools import controls, docs
from tools import terraform as tf

STACKS = ("staging", "production")


@pytest.fixture(scope="module")
def plans() -> dict[str, Plan]:
    return {stack: plan_for(stack) for stack in STACKS}


def test_every_status_is_the_one_the_program_means(plans):
    wrong = {c.id: (controls.status(c, plans), c.expected, controls.failures(c, plans))
             for c in controls.CONTROLS if controls.status(c, plans) != c.expected}
    assert wrong == {}


def test_the_tables_are_the_plans(plans):
    readme = (ROOT / "README.md").read_text()
    assert docs.render(readme, plans) == readme, "run `python -m tools.docs` to refresh the README"
    security = (ROOT / "docs" / "security.md").read_text()
    assert docs.render_security(security, plans) == security, "run `python -m tools.docs` to refresh docs/security.md"
    assert "| EC2.6 | VPC flow logging should be enabled in all VPCs | met |" in security
    assert "| S3.9 | S3 bucket server access logging should be enabled | met, except `storage-logs` |" in security
    assert "| IAM.3 | IAM users' access keys should be rotated every 90 days or less | met |" in security
    # The README's short form lists every control once.
    summary = readme.split(docs.SUMMARY_START)[1].split(docs.SUMMARY_END)[0]
    listed = [item.strip().split(" ")[0] for line in summary.splitlines()[3:] for cell in line.split("|")[2:-1]
              for item in cell.split(",") if item.strip() not in ("", "—")]
    assert sorted(listed) == sorted(c.id for c in controls.CONTROLS)


def test_every_control_says_how_or_why_not():
    ids = [c.id for c in controls.CONTROLS]
    assert len(ids) == len(set(ids))
    for control in controls.CONTROLS:
        assert control.note.strip(), control.id
        assert (control.check is None) == (control.expected in ("account", "operational", "n/a")), control.id
        assert bool(control.exceptions) == (control.expected == "met-except"), control.id


# ------------------------------------------------------------------------------ each check can fail

def _one(plan: Plan, type_: str, name: str) -> Registration:
    return plan.one(type_, name)


def _drop(plan: Plan, type_: str, name: str) -> None:
    plan.resources.remove(_one(plan, type_, name))


def _add(plan: Plan, type_: str, name: str, inputs: dict, deps: dict[str, list[str]] | None = None) -> None:
    plan.resources.append(Registration(
        urn=f"urn:pulumi:production::storiesofsoftware::{type_}::{name}", type=type_, name=name, parent="",
        provider="", depends_on=[], property_dependencies=deps or {}, protect=False, retain_on_delete=False,
        delete_before_replace=False, delete_before_replace_defined=False, custom=True, ignore_changes=[],
        replace_on_changes=[], additional_secret_outputs=[], inputs=inputs))


def _set(plan: Plan, type_: str, name: str, **inputs) -> None:
    _one(plan, type_, name).inputs.update(inputs)


def _policy(plan: Plan, type_: str, name: str, edit: Callable[[dict], None]) -> None:
    reg = _one(plan, type_, name)
    doc = json.loads(reg.inputs["policy"])
    edit(doc)
    reg.inputs["policy"] = json.dumps(doc)


PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BPOL = "aws:s3/bucketPolicy:BucketPolicy"
LIFE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
VER = "aws:s3/bucketVersioning:BucketVersioning"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
WORLD = {"Sid": "Planted", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::storage-content/*"}


def _vpc_dep(plan: Plan) -> dict[str, list[str]]:
    return {"vpcId": [plan.one("aws:ec2/vpc:Vpc").urn]}


def _instance_dep(plan: Plan) -> dict[str, list[str]]:
    return {"instance": [plan.one("aws:ec2/instance:Instance").urn]}


MUTATIONS: dict[str, Callable[[Plan], None]] = {
    "S3.2": lambda p: _policy(p, BPOL, "storage-content-tls-only", lambda d: d["Statement"].append(WORLD)),
    "S3.3": lambda p: _drop(p, PAB, "storage-images-public-access"),
    "S3.5": lambda p: _policy(p, BPOL, "storage-content-tls-only", lambda d: d.update(Statement=[])),
    "S3.6": lambda p: _policy(p, BPOL, "storage-content-tls-only", lambda d: d["Statement"].append(
        {**WORLD, "Principal": {"AWS": "arn:aws:iam::999999999999:root"}})),
    "S3.8": lambda p: _set(p, PAB, "storage-backups-public-access", blockPublicPolicy=False),
    "S3.9": lambda p: _drop(p, "aws:s3/bucketLogging:BucketLogging", "storage-backups-access-log"),
    "S3.10": lambda p: _set(p, LIFE, "storage-images-lifecycle", rules=[]),
    "S3.12": lambda p: _set(p, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "storage-content-ownership",
                            rule={"objectOwnership": "ObjectWriter"}),
    "S3.13": lambda p: _drop(p, LIFE, "storage-logs-lifecycle"),
    "S3.14": lambda p: _set(p, VER, "storage-backups-versioning", versioningConfiguration={"status": "Suspended"}),
    "S3.15": lambda p: _drop(p, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                             "storage-backups-lock"),
    "EC2.1": lambda p: _add(p, "aws:ebs/snapshotCreateVolumePermission:SnapshotCreateVolumePermission", "shared",
                            {"accountId": "999999999999"}),
    "EC2.2": lambda p: _set(p, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", "network-default-sg",
                            ingress=[{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]),
    "EC2.3": lambda p: _set(p, "aws:ebs/volume:Volume", "host-data", encrypted=False),
    "EC2.6": lambda p: _drop(p, "aws:ec2/flowLog:FlowLog", "network-flow-log"),
    "EC2.8": lambda p: _set(p, "aws:ec2/instance:Instance", "host-instance",
                            metadataOptions={"httpTokens": "optional"}),
    "EC2.12": lambda p: _drop(p, "aws:ec2/eipAssociation:EipAssociation", "host-eip-assoc"),
    "EC2.13": lambda p: _set(p, INGRESS, "network-ssh-0", cidrIpv4="0.0.0.0/0"),
    "EC2.14": lambda p: _add(p, INGRESS, "rdp", {"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389,
                                                 "cidrIpv6": "::/0"}),
    "EC2.15": lambda p: _set(p, "aws:ec2/subnet:Subnet", "network-public", mapPublicIpOnLaunch=True),
    "EC2.16": lambda p: _add(p, "aws:ec2/networkAcl:NetworkAcl", "spare", {}, _vpc_dep(p)),
    "EC2.17": lambda p: _add(p, "aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment", "second",
                             {"deviceIndex": 1}, _instance_dep(p)),
    "EC2.18": lambda p: _set(p, INGRESS, "network-web443-0", cidrIpv4="0.0.0.0/0"),
    "EC2.19": lambda p: _add(p, INGRESS, "postgres", {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432,
                                                      "cidrIpv4": "0.0.0.0/0"}),
    "SSM.1": lambda p: _drop(p, "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "host-ssm"),
    "IAM.1": lambda p: _policy(p, "aws:iam/groupPolicy:GroupPolicy", "storage-api-policy", lambda d: d.update(
        Statement=[{"Effect": "Allow", "Action": "*", "Resource": "*"}])),
    "IAM.2": lambda p: _add(p, "aws:iam/userPolicy:UserPolicy", "direct", {"policy": "{}"}),
    "IAM.3": lambda p: setattr(_one(p, "aws:iam/accessKey:AccessKey", "storage-api-a-key"), "replacement_trigger", None),
    "IAM.5": lambda p: _add(p, "aws:iam/userLoginProfile:UserLoginProfile", "console", {}),
    "IAM.8": lambda p: _one(p, "aws:iam/user:User", "storage-api-b").inputs["tags"].update(
        {"sos-key-rotation-days": "200"}),
    "IAM.21": lambda p: _policy(p, "aws:iam/groupPolicy:GroupPolicy", "storage-backup-writer-policy",
                                lambda d: d["Statement"][0].update(Action=["s3:*"])),
    "IAM.22": lambda p: _one(p, "aws:iam/user:User", "storage-backup-writer-a").inputs["tags"].update(
        {"sos-key-rotation-days": "120"}),
}


def test_every_met_control_has_a_planted_violation():
    met = {c.id for c in controls.CONTROLS if c.expected in ("met", "met-except")}
    assert set(MUTATIONS) == met


@pytest.mark.parametrize("control_id", sorted(MUTATIONS))
def test_each_check_fails_on_its_planted_violation(plans, control_id):
    control = next(c for c in controls.CONTROLS if c.id == control_id)
    planted = copy.deepcopy(plans["production"])
    MUTATIONS[control_id](planted)
    assert controls.status(control, {"production": planted}) == "not-met"
    assert controls.status(control, {"production": plans["production"]}) == control.expected


# ------------------------------------------------------------------------------ an outside scanner

# checkov's findings on the translated plan that the table keeps, each with its control and why.
CHECKOV_KEPT: dict[str, tuple[str, str]] = {
    "CKV2_AWS_19": ("EC2.12", "the Elastic IP is associated with the host's network interface, which checkov "
                              "does not follow to the instance"),
    "CKV2_AWS_62": ("S3.11", "no event notifications: nothing consumes them"),
    "CKV_AWS_126": ("", "no detailed (1-minute) CloudWatch monitoring: Prometheus and the node exporter "
                        "watch the host"),
    "CKV_AWS_144": ("S3.7", "no cross-region replication"),
    "CKV_AWS_145": ("S3.17", "SSE-S3 rather than KMS"),
    "CKV_AWS_189": ("", "the data volume uses the account's AWS-managed EBS key, not a customer key"),
    "CKV_AWS_273": ("IAM.19", "machine users for containers that cannot take a role"),
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    require_tool("terraform")
    work = tmp_path_factory.mktemp("controls-schema")
    return tf.provider_schema(work, tf.cli_config(work, tf.mirror()))


def _checkov(config: dict, directory: Path) -> set[tuple[str, str]]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.tf.json").write_text(json.dumps(config))
    result = subprocess.run([require_tool("checkov"), "-d", str(directory), "--framework", "terraform_json",
                             "--quiet", "--compact", "-o", "json", "--skip-download"],
                            capture_output=True, text=True, timeout=600)
    doc = json.loads(result.stdout)
    doc = doc[0] if isinstance(doc, list) else doc
    assert doc["summary"]["passed"] > 100, doc["summary"]
    return {(f["check_id"], f["resource"].split(".")[-1]) for f in doc["results"]["failed_checks"]}


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_only_the_kept_trade_offs(plans, schema, stack, tmp_path):
    found = _checkov(tf.translate(plans[stack], schema).config, tmp_path / stack)
    assert {check for check, _ in found} == set(CHECKOV_KEPT)
    ids = {c.id for c in controls.CONTROLS}
    for control, reason in CHECKOV_KEPT.values():
        assert reason and (control == "" or control in ids)


def test_checkov_would_report_what_issue_18_fixed(plans, schema, tmp_path):
    """The scanner is not vacuous: without the flow log and the access logging it
    reports what the audit of issue 18 reported."""
    config = tf.translate(plans["production"], schema).config
    resources = config["resource"]
    resources.pop("aws_flow_log")
    resources.pop("aws_s3_bucket_logging")
    found = _checkov(config, tmp_path / "planted")
    assert ("CKV2_AWS_11", "network-vpc") in found
    assert ("CKV_AWS_18", "storage-backups") in found
