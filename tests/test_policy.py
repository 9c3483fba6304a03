"""The policy pack: each rule catches a violating resource and passes a compliant one; the whole
pack passes over the offline plan of every stack; the pack the engine loads has every rule,
mandatory."""

from __future__ import annotations

import json
import runpy
import sys

import pytest

from testsupport.plans import STACKS, cluster_plan_for, plan_for
from testsupport.tools import ROOT
from tools import policy as offline

sys.path.insert(0, str(ROOT / "policy"))

import rules

PROD = "urn:pulumi:production::storiesofsoftware::t::r"
DEV = "urn:pulumi:dev::storiesofsoftware::t::r"


def container(**over):
    props = {
        "user": "1001:1001", "readOnly": True, "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"], "memory": 512, "cpus": "1",
        "healthcheck": {"tests": ["CMD", "true"]}, "logDriver": "json-file", "logOpts": {"max-size": "10m"},
        "image": "sha256:" + "a" * 64,
        "labels": [{"label": "service", "value": "api"}, {"label": "sos.opt-outs", "value": ""},
                   {"label": "sos.secret-env", "value": "DATABASE_URL"}],
        "envs": ["PORT=3001", "DATABASE_URL=postgres://…"],
    }
    props.update(over)
    return props


def labelled(service: str, outs: str = "", secret_env: str = "") -> list[dict]:
    return [{"label": "service", "value": service}, {"label": "sos.opt-outs", "value": outs},
            {"label": "sos.secret-env", "value": secret_env}]


CONTAINER = "docker:index/container:Container"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
TLS_POLICY = json.dumps({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})

TASK_CONTAINER = {"name": "api", "user": "1001:1001", "readonlyRootFilesystem": True,
                  "linuxParameters": {"capabilities": {"drop": ["ALL"]}}, "logConfiguration": {"logDriver": "awslogs"},
                  "healthCheck": {"command": ["CMD", "true"]}, "environment": [{"name": "NODE_ENV", "value": "production"}],
                  "secrets": [{"name": "DATABASE_URL", "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:x"}]}

# rule -> (type, compliant props, violating props, what the report says, urn, protect of each)
CASES = {
    "s3-public-access-blocked": (
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        dict.fromkeys(("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True),
        {"blockPublicAcls": True, "blockPublicPolicy": False, "ignorePublicAcls": True, "restrictPublicBuckets": True},
        "blockPublicPolicy must be true"),
    "s3-encrypted": (
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        {"rules": []}, "SSE-S3 or SSE-KMS"),
    "s3-versioned": (
        "aws:s3/bucketVersioning:BucketVersioning",
        {"versioningConfiguration": {"status": "Enabled"}},
        {"versioningConfiguration": {"status": "Suspended"}}, "versioning must be Enabled"),
    "s3-tls-only": (
        "aws:s3/bucketPolicy:BucketPolicy", {"policy": TLS_POLICY},
        {"policy": json.dumps({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]})},
        "deny requests without TLS"),
    "ec2-imdsv2": (
        "aws:ec2/instance:Instance",
        {"metadataOptions": {"httpTokens": "required"}, "rootBlockDevice": {"encrypted": True}},
        {"metadataOptions": {"httpTokens": "optional"}, "rootBlockDevice": {"encrypted": True}}, "IMDSv2"),
    "volumes-encrypted": (
        "aws:ebs/volume:Volume", {"encrypted": True}, {"encrypted": False}, "must be encrypted"),
    "no-ssh-from-anywhere": (
        INGRESS, {"fromPort": 22, "toPort": 22, "cidrIpv4": "198.51.100.0/24"},
        {"fromPort": 22, "toPort": 22, "cidrIpv6": "::/0"}, "SSH (22) open to ::/0"),
    "web-only-from-cloudflare": (
        INGRESS, {"fromPort": 443, "toPort": 443, "cidrIpv4": "104.16.0.0/13"},
        {"fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"}, "not a Cloudflare range"),
    "container-hardened": (
        CONTAINER, container(), container(readOnly=False), "read-only"),
    "image-pinned": (
        "docker:index/remoteImage:RemoteImage", {"name": "postgres:16.10-alpine"}, {"name": "redis:latest"},
        "must be pinned"),
    "only-the-edge-publishes": (
        CONTAINER, container(ports=[{"internal": 9001, "external": 9001, "ip": "127.0.0.1"}]),
        container(ports=[{"internal": 5432, "external": 5432, "ip": "0.0.0.0"}]), "only the edge proxy"),
    "stateful-protected-in-production": (
        "docker:index/volume:Volume", {"name": "sos-production-postgres-data"},
        {"name": "sos-production-postgres-data"}, "must be protected"),
    "data-containers-protected-in-production": (
        CONTAINER, container(labels=labelled("postgres")), container(labels=labelled("redis")),
        "allowDataReplacement"),
    "no-plain-credentials": (
        CONTAINER, container(envs=["DATABASE_URL=x", "SOS_SECRETS_DIR=/etc/sos/secrets",
                                   "GF_SECURITY_ADMIN_PASSWORD__FILE=/etc/sos/secrets/p"]),
        container(envs=["DATABASE_URL=x", "SMTP_PASSWORD=hunter2"]), "SMTP_PASSWORD looks like a credential"),
    # The cluster placement (issue 19).
    "ecs-task-hardened": (
        "aws:ecs/taskDefinition:TaskDefinition", {"containerDefinitions": json.dumps([TASK_CONTAINER])},
        {"containerDefinitions": json.dumps([{**TASK_CONTAINER, "environment": [{"name": "DB_PASSWORD", "value": "x"}],
                                              "readonlyRootFilesystem": False}])},
        "DB_PASSWORD looks like a credential"),
    "ecs-service-private-rolling": (
        "aws:ecs/service:Service",
        {"networkConfiguration": {"assignPublicIp": False}, "deploymentMinimumHealthyPercent": 100,
         "deploymentCircuitBreaker": {"enable": True, "rollback": True}},
        {"networkConfiguration": {"assignPublicIp": True}, "deploymentMinimumHealthyPercent": 50,
         "deploymentCircuitBreaker": {"enable": True, "rollback": False}},
        "public IP"),
    "rds-encrypted-private-kept": (
        "aws:rds/instance:Instance",
        {"storageEncrypted": True, "publiclyAccessible": False, "deletionProtection": True,
         "finalSnapshotIdentifier": "final", "backupRetentionPeriod": 14, "manageMasterUserPassword": True,
         "multiAz": True},
        {"storageEncrypted": True, "publiclyAccessible": False, "deletionProtection": True,
         "finalSnapshotIdentifier": "final", "backupRetentionPeriod": 14, "password": "hunter2hunter2",
         "multiAz": False},
        "Multi-AZ"),
    "elasticache-encrypted-authenticated": (
        "aws:elasticache/replicationGroup:ReplicationGroup",
        {"atRestEncryptionEnabled": True, "transitEncryptionEnabled": True, "authToken": "t" * 32,
         "automaticFailoverEnabled": True, "multiAzEnabled": True},
        {"atRestEncryptionEnabled": True, "transitEncryptionEnabled": False, "automaticFailoverEnabled": True,
         "multiAzEnabled": True},
        "must authenticate"),
    "engine-version-floats": (
        "aws:rds/instance:Instance", {"engineVersion": "16", "autoMinorVersionUpgrade": True},
        {"engineVersion": "16.10", "autoMinorVersionUpgrade": True}, "give the major only (16)"),
    "ecs-image-not-anonymous-docker-hub": (
        "aws:ecs/taskDefinition:TaskDefinition",
        {"containerDefinitions": json.dumps([
            {"name": "edge", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sos-production/ecr-public/"
                                      "docker/library/nginx:1.28.0-alpine"},
            {"name": "n8n", "image": "ghcr.io/n8n-io/n8n:1.123.5"},
            {"name": "api", "image": "n8nio/n8n:1.123.5",
             "repositoryCredentials": {"credentialsParameter": "arn:aws:secretsmanager:us-east-1:1:secret:hub"}}])},
        {"containerDefinitions": json.dumps([{"name": "edge", "image": "docker.io/library/nginx:1.28.0-alpine"}])},
        "pulled from Docker Hub anonymously"),
    "lb-mutual-tls": (
        "aws:lb/listener:Listener", {"protocol": "HTTPS", "mutualAuthentication": {"mode": "verify"}},
        {"protocol": "HTTPS", "mutualAuthentication": {"mode": "passthrough"}}, "mutual TLS"),
}
PROTECT = {"stateful-protected-in-production": (True, False),
           "data-containers-protected-in-production": (True, False)}


def _rule(name: str) -> rules.Rule:
    (rule,) = [r for r in rules.RULES if r.name == name]
    return rule


def _run(rule_name: str, rtype: str, props: dict, protect: bool) -> list[str]:
    rule = _rule(rule_name)
    assert rtype in rule.types
    messages: list[str] = []
    rule.check(rules.Resource(type=rtype, name="r", urn=PROD, props=props, protect=protect), messages.append)
    return messages


def test_every_rule_has_a_case():
    assert set(CASES) == {r.name for r in rules.RULES}


@pytest.mark.parametrize("rule_name", sorted(CASES))
def test_rule_passes_the_compliant_example_and_reports_the_violating_one(rule_name):
    rtype, good, bad, expected = CASES[rule_name]
    good_protect, bad_protect = PROTECT.get(rule_name, (False, False))
    assert _run(rule_name, rtype, good, good_protect) == []
    found = _run(rule_name, rtype, bad, bad_protect)
    assert found and any(expected in m for m in found), found


@pytest.mark.parametrize("case", [
    # Each default the container rule holds, broken one at a time.
    ({"user": "0:0"}, "non-root"),
    ({"user": None}, "non-root"),
    ({"capabilities": {"drops": ["NET_RAW"]}}, "drop ALL"),
    ({"securityOpts": []}, "no-new-privileges"),
    ({"memory": 0}, "limits"),
    ({"healthcheck": None}, "healthcheck"),
    ({"logOpts": {}}, "rotate"),
    ({"image": "nginx:1.28.0-alpine"}, "digest"),
])
def test_container_rule_checks_each_default(case):
    over, expected = case
    found = _run("container-hardened", CONTAINER, container(**over), False)
    assert any(expected in m for m in found), found


def test_container_opt_outs_are_honoured_only_by_name():
    root = container(user="0:0", labels=labelled("minio", "runs-as-root"))
    assert _run("container-hardened", CONTAINER, root, False) == []
    nocheck = container(healthcheck=None, labels=labelled("nginx-exporter", "no-healthcheck"))
    assert _run("container-hardened", CONTAINER, nocheck, False) == []


def test_edge_proxy_may_publish_and_others_only_on_loopback():
    edge = container(labels=labelled("nginx"), ports=[{"internal": 8443, "external": 443, "ip": "0.0.0.0"}])
    assert _run("only-the-edge-publishes", CONTAINER, edge, False) == []


def test_protection_is_required_in_production_only():
    rule = _rule("stateful-protected-in-production")
    found: list[str] = []
    for rtype, props in (("aws:s3/bucket:Bucket", {}), ("random:index/randomPassword:RandomPassword", {}),
                         ("docker:index/volume:Volume", {"name": "sos-dev-postgres-data"})):
        rule.check(rules.Resource(rtype, "r", DEV, props, protect=False), found.append)
    assert found == []
    rule.check(rules.Resource("docker:index/volume:Volume", "r", PROD, {"name": "sos-production-edge-cache"}),
               found.append)
    assert found == [], "a cache is not the platform's data"
    # Issue 18: Prometheus's history and Grafana's users and dashboards are.
    for volume in ("sos-production-prometheus-data", "sos-production-grafana-data"):
        rule.check(rules.Resource("docker:index/volume:Volume", "r", PROD, {"name": volume}), found.append)
    assert len(found) == 2
    # Generated secrets: those whose loss loses data, not those a rotation replaces.
    for name, irreplaceable in (("secrets-n8nEncryptionKey", True), ("secrets-backupCipher", True),
                                ("secrets-postgresApp", False), ("secrets-redis", False)):
        before = len(found)
        rule.check(rules.Resource("random:index/randomPassword:RandomPassword", name, PROD, {}), found.append)
        assert len(found) - before == irreplaceable, name


def test_the_pack_protects_exactly_the_secrets_the_program_calls_irreplaceable():
    from configs.secrets import SPECS

    assert {name for name in SPECS if rules.IRREPLACEABLE_SECRETS.search(f"secrets-{name}")} == \
        {name for name, spec in SPECS.items() if spec.irreplaceable}


def test_commands_must_not_carry_credentials():
    rule = _rule("no-plain-credentials")
    found: list[str] = []
    ok = {"create": 'set -eu\nenvfile="$(mktemp)"\ncat > "$envfile"\ndocker run --env-file "$envfile" x'}
    bad = {"create": "docker run -e POSTGRES_PASSWORD=hunter2 postgres:16"}
    rule.check(rules.Resource("command:remote:Command", "c", PROD, ok), found.append)
    assert found == []
    rule.check(rules.Resource("command:remote:Command", "c", PROD, bad), found.append)
    assert found and "pass it on stdin" in found[0]


@pytest.mark.parametrize("stack", STACKS)
def test_the_whole_pack_passes_over_the_offline_plan(stack):
    assert offline.violations(plan_for(stack)) == []


def test_every_rule_applies_to_something_the_program_registers():
    """A rule whose type never occurs would pass vacuously (the cluster placement's rules apply to
    the stacks with `placement: cluster`)."""
    types = {r.type for stack in STACKS for r in offline.resources(plan_for(stack))}
    types |= {r.type for stack in ("staging", "production") for r in offline.resources(cluster_plan_for(stack))}
    for rule in rules.RULES:
        assert rule.types & types, f"{rule.name} matches no registered resource"


def test_a_violation_in_the_program_is_caught(monkeypatch):
    """The pack over a plan of the real program with one default broken."""
    from offline import harness

    plan = harness.run("production")
    broken = next(r for r in plan.resources if r.name == "storage-backups-versioning")
    broken.inputs["versioningConfiguration"] = {"status": "Suspended"}
    assert offline.violations(plan) == [("s3-versioned", "storage-backups-versioning", "versioning must be Enabled")]


def test_pack_registers_every_rule_as_mandatory(monkeypatch):
    import pulumi_policy

    captured = {}

    def fake_pack(**kwargs):
        captured.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert captured["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    names = [p.name for p in captured["policies"]]
    assert names == [r.name for r in rules.RULES]
    assert all(p.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY for p in captured["policies"])


def test_pack_adapter_passes_the_engines_arguments_to_the_rule(monkeypatch):
    """The validate function the engine calls, fed the engine's argument type."""
    import pulumi_policy

    captured = {}
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kw: captured.update(kw))
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    (versioning,) = [p for p in captured["policies"] if p.name == "s3-versioned"]
    opts = pulumi_policy.PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None,
                                               aliases=[], custom_timeouts=None, additional_secret_outputs=[])
    args = pulumi_policy.ResourceValidationArgs(
        resource_type="aws:s3/bucketVersioning:BucketVersioning",
        props={"versioningConfiguration": {"status": "Disabled"}}, urn=PROD, name="v", opts=opts, provider=None)
    reported: list[str] = []
    versioning.validate(args, lambda message, urn=None: reported.append(message))
    assert reported == ["versioning must be Enabled"]


def test_requirements_pin_the_pack_like_the_program():
    pins = dict(line.split("==") for line in (ROOT / "policy" / "requirements.txt").read_text().split())
    program = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                   if "==" in line and not line.startswith("#"))
    assert pins["pulumi"] == program["pulumi"]
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert f"pulumi-policy=={pins['pulumi-policy']}" in dev


def test_the_data_replacement_override_disables_exactly_that_rule():
    """The one deploy that means to replace PostgreSQL or Redis in production names this file
    (README: Deploying a new version); it must name a real rule and nothing else."""
    config = json.loads((ROOT / rules.ALLOW_DATA_REPLACEMENT).read_text())
    assert config == {"data-containers-protected-in-production": "disabled"}
    assert "data-containers-protected-in-production" in {r.name for r in rules.RULES}


def test_production_data_containers_are_protected_unless_the_stack_allows_replacing_them():
    from offline import harness

    def protected(plan) -> dict[str, bool]:
        return {rules._labels(c.inputs)["service"]: c.protect for c in plan.of_type(CONTAINER)
                if rules._labels(c.inputs)["service"] in rules.DATA_SERVICES}

    assert protected(plan_for("production")) == {"postgres": True, "redis": True}
    assert protected(plan_for("staging")) == {"postgres": False, "redis": False}
    allowed = harness.run("production", overrides={"allowDataReplacement": True})
    assert protected(allowed) == {"postgres": False, "redis": False}
    # Without the policy override, the pack still refuses that plan, and says how to proceed.
    found = {(rule, name) for rule, name, _ in offline.violations(allowed)}
    assert found == {("data-containers-protected-in-production", "postgres-svc"),
                     ("data-containers-protected-in-production", "redis-svc")}


def test_web_ports_admit_cloudflare_and_the_vpc_itself_only():
    for cidr, allowed in (("104.16.0.0/13", True), ("10.44.0.0/16", True), ("0.0.0.0/0", False),
                          ("203.0.113.0/24", False)):
        found = _run("web-only-from-cloudflare", INGRESS, {"fromPort": 443, "toPort": 443, "cidrIpv4": cidr}, False)
        assert (found == []) is allowed, cidr


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_cluster_placement_passes_every_rule(stack):
    plan = cluster_plan_for(stack)
    assert {r.type for r in plan.resources} >= {"aws:ecs/taskDefinition:TaskDefinition", "aws:ecs/service:Service",
                                                  "aws:rds/instance:Instance", "aws:lb/listener:Listener",
                                                  "aws:elasticache/replicationGroup:ReplicationGroup"}
    assert offline.violations(plan) == []


def test_only_a_one_off_task_goes_without_a_health_check():
    """The bootstrap and migration tasks run to completion (nothing to check while they run);
    a service's task without a health check is reported, whatever it claims to be."""
    unchecked = json.dumps([{k: v for k, v in TASK_CONTAINER.items() if k != "healthCheck"}])
    task = "aws:ecs/taskDefinition:TaskDefinition"
    assert _run("ecs-task-hardened", task, {"containerDefinitions": unchecked, "tags": {"runs": "one-off"}}, False) == []
    for tags in ({"runs": "service"}, {}):
        found = _run("ecs-task-hardened", task, {"containerDefinitions": unchecked, "tags": tags}, False)
        assert any("needs a health check" in m for m in found), tags


def test_only_a_single_stop_first_service_may_deploy_below_full_capacity():
    service = "aws:ecs/service:Service"
    base = {"networkConfiguration": {"assignPublicIp": False},
            "deploymentCircuitBreaker": {"enable": True, "rollback": True}}
    stop_first = {**base, "deploymentMinimumHealthyPercent": 0, "deploymentMaximumPercent": 100, "desiredCount": 1,
                  "tags": {"deploy": "stop-first"}}
    assert _run("ecs-service-private-rolling", service, stop_first, False) == []
    for broken in ({**stop_first, "tags": {"deploy": "rolling"}}, {**stop_first, "desiredCount": 2},
                   {**stop_first, "deploymentMaximumPercent": 200}):
        assert _run("ecs-service-private-rolling", service, broken, False), broken


def test_a_config_writers_secret_files_must_be_private():
    """Files reach read-only containers through config writers (components/config_volumes.py):
    the rule reads the bundle's modes, once the bundle is known."""
    from configs import file_bundle

    rule = _rule("no-plain-credentials")

    def writer(mode: int) -> rules.Resource:
        create = file_bundle.write_files_script(image="sha256:x", volume="v", directory="/etc/sos/secrets")
        stdin = file_bundle.bundle_text([file_bundle.BundleFile("db-password", "x", mode, 70, 70)])
        return rules.Resource("command:local:Command", "w", PROD, {"create": create, "stdin": stdin})

    found: list[str] = []
    rule.check(writer(0o400), found.append)
    assert found == []
    rule.check(writer(0o444), found.append)
    assert found == ["/etc/sos/secrets/db-password holds a secret and must be mode 0400"]
