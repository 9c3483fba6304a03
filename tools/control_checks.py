"""The checks behind the FSBP controls (tools/controls.py): each takes the offline plan of a stack
and names the planned resources that fail it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from offline.harness import Plan, Registration, unwrap

BUCKET = "aws:s3/bucket:Bucket"
HIGH_RISK_PORTS = (20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432,
                   5500, 5601, 8080, 8088, 8888, 9200, 9300)
MAX_KEY_AGE_DAYS = 90
# IAM.22: a credential unused this long counts as unused.
UNUSED_DAYS = 45

def _by_bucket(plan: Plan, type_: str) -> dict[str, list[Registration]]:
    """Bucket name -> the planned resources of `type_` configuring it."""
    buckets = {b.urn: b.name for b in plan.of_type(BUCKET)}
    out: dict[str, list[Registration]] = {name: [] for name in buckets.values()}
    for r in plan.of_type(type_):
        for urn in r.property_dependencies.get("bucket", []):
            if urn in buckets:
                out[buckets[urn]].append(r)
    return out


def _buckets_without(plan: Plan, type_: str, ok: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[str]:
    return sorted(name for name, regs in _by_bucket(plan, type_).items()
                  if not any(ok(unwrap(r.inputs)) for r in regs))


def _policy_documents(plan: Plan) -> Iterable[tuple[Registration, dict[str, Any]]]:
    for r in plan.resources:
        text = unwrap(r.inputs).get("policy")
        if r.type.startswith("aws:") and isinstance(text, str) and text.lstrip().startswith("{"):
            yield r, json.loads(text)


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _ingress(plan: Plan) -> Iterable[tuple[Registration, int, int, str]]:
    for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"):
        i = unwrap(r.inputs)
        cidr = i.get("cidrIpv4") or i.get("cidrIpv6") or ""
        low, high = (0, 65535) if i.get("ipProtocol") == "-1" else (int(i.get("fromPort", 0)), int(i.get("toPort", 0)))
        yield r, low, high, cidr
    for r in plan.of_type("aws:ec2/securityGroup:SecurityGroup"):
        for rule in unwrap(r.inputs).get("ingress") or []:
            for cidr in (rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or []):
                yield r, int(rule.get("fromPort", 0)), int(rule.get("toPort", 0)), cidr


def open_to_world(plan: Plan, ports: Iterable[int] | None = None) -> list[str]:
    wanted = list(ports) if ports is not None else None
    return sorted({r.name for r, low, high, cidr in _ingress(plan) if cidr in ("0.0.0.0/0", "::/0")
                   and (wanted is None or any(low <= p <= high for p in wanted))})


# ------------------------------------------------------------------------------ checks: S3

def public_access_blocked(plan: Plan) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    return _buckets_without(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                            lambda i: all(i.get(f) is True for f in flags))


def no_public_grant(plan: Plan) -> list[str]:
    bad = [r.name for r, doc in _policy_documents(plan) if r.type == "aws:s3/bucketPolicy:BucketPolicy"
           for s in _statements(doc) if s.get("Effect") == "Allow" and s.get("Principal") in ("*", {"AWS": "*"})]
    acl = [r.name for r in plan.of_type(BUCKET) if unwrap(r.inputs).get("acl", "private") != "private"]
    return sorted(set(bad + acl + public_access_blocked(plan)))


def tls_only(plan: Plan) -> list[str]:
    def denies_plain(i: dict[str, Any]) -> bool:
        return any(s.get("Effect") == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in _statements(json.loads(i["policy"])))
    return _buckets_without(plan, "aws:s3/bucketPolicy:BucketPolicy", denies_plain)


def no_other_accounts(plan: Plan) -> list[str]:
    return sorted({r.name for r, doc in _policy_documents(plan) if r.type == "aws:s3/bucketPolicy:BucketPolicy"
                   for s in _statements(doc) if s.get("Effect") == "Allow"
                   and isinstance(s.get("Principal"), dict) and "AWS" in s["Principal"]})


def access_logged(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketLogging:BucketLogging")


def lifecycle(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                            lambda i: any(rule.get("status") == "Enabled" for rule in i.get("rules") or []))


def versioned(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketVersioning:BucketVersioning",
                            lambda i: i.get("versioningConfiguration", {}).get("status") == "Enabled")


def versioned_with_lifecycle(plan: Plan) -> list[str]:
    """Versioned buckets without an enabled lifecycle rule."""
    return sorted(set(lifecycle(plan)) - set(versioned(plan)))


def no_acls(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                            lambda i: i.get("rule", {}).get("objectOwnership") == "BucketOwnerEnforced")


def object_lock(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                            lambda i: bool(i.get("rule", {}).get("defaultRetention")))


def kms_encrypted(plan: Plan) -> list[str]:
    return _buckets_without(
        plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        lambda i: any(rule.get("applyServerSideEncryptionByDefault", {}).get("sseAlgorithm", "").startswith("aws:kms")
                      for rule in i.get("rules") or []))


def replicated(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketReplicationConfig:BucketReplicationConfig")


def notifications(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketNotification:BucketNotification")


def mfa_delete(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketVersioning:BucketVersioning",
                            lambda i: i.get("versioningConfiguration", {}).get("mfaDelete") == "Enabled")


# ------------------------------------------------------------------------------ checks: EC2, VPC, EBS

def snapshots_private(plan: Plan) -> list[str]:
    return [r.name for r in plan.of_type("aws:ebs/snapshotCreateVolumePermission:SnapshotCreateVolumePermission")]


def default_sg_closed(plan: Plan) -> list[str]:
    closed = {u for r in plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
              if not unwrap(r.inputs).get("ingress") and not unwrap(r.inputs).get("egress")
              for u in r.property_dependencies.get("vpcId", [])}
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in closed)


def volumes_encrypted(plan: Plan) -> list[str]:
    bad = [r.name for r in plan.of_type("aws:ebs/volume:Volume") if unwrap(r.inputs).get("encrypted") is not True]
    bad += [r.name for r in plan.of_type("aws:ec2/instance:Instance")
            if (unwrap(r.inputs).get("rootBlockDevice") or {}).get("encrypted") is not True]
    return sorted(bad)


def flow_logged(plan: Plan) -> list[str]:
    logged = {u for r in plan.of_type("aws:ec2/flowLog:FlowLog") if unwrap(r.inputs).get("trafficType") == "ALL"
              for u in r.property_dependencies.get("vpcId", [])}
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in logged)


def imdsv2(plan: Plan) -> list[str]:
    return sorted(r.name for r in plan.of_type("aws:ec2/instance:Instance")
                  if (unwrap(r.inputs).get("metadataOptions") or {}).get("httpTokens") != "required")


def no_public_ip(plan: Plan) -> list[str]:
    with_eip = {u for a in plan.of_type("aws:ec2/eipAssociation:EipAssociation")
                for u in a.property_dependencies.get("networkInterfaceId", []) + a.property_dependencies.get("instanceId", [])}
    bad = []
    for r in plan.of_type("aws:ec2/instance:Instance"):
        nic = (unwrap(r.inputs).get("primaryNetworkInterface") or {})
        nic_urns = r.property_dependencies.get("primaryNetworkInterface", [])
        if unwrap(r.inputs).get("associatePublicIpAddress") or r.urn in with_eip or set(nic_urns) & with_eip or \
                nic.get("networkInterfaceId") in with_eip:
            bad.append(r.name)
    return sorted(bad)


def ec2_endpoint(plan: Plan) -> list[str]:
    served = {u for r in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
              if str(unwrap(r.inputs).get("serviceName", "")).endswith(".ec2") for u in r.property_dependencies.get("vpcId", [])}
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in served)


def eips_attached(plan: Plan) -> list[str]:
    attached = {u for a in plan.of_type("aws:ec2/eipAssociation:EipAssociation")
                for u in a.property_dependencies.get("allocationId", [])}
    return sorted(e.name for e in plan.of_type("aws:ec2/eip:Eip") if e.urn not in attached and not unwrap(e.inputs).get("instance"))


def no_auto_public_ip(plan: Plan) -> list[str]:
    return sorted(s.name for s in plan.of_type("aws:ec2/subnet:Subnet") if unwrap(s.inputs).get("mapPublicIpOnLaunch"))


def one_eni(plan: Plan) -> list[str]:
    attached: dict[str, int] = {}
    for a in plan.of_type("aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"):
        for u in a.property_dependencies.get("instance", []):
            attached[u] = attached.get(u, 0) + 1
    return sorted(r.name for r in plan.of_type("aws:ec2/instance:Instance") if attached.get(r.urn, 0) > 0)


def default_nacl_restricted(plan: Plan) -> list[str]:
    restricted = {u for r in plan.of_type("aws:ec2/defaultNetworkAcl:DefaultNetworkAcl")
                  for u in r.property_dependencies.get("defaultNetworkAclId", [])}
    # A VPC's default network ACL admits everything unless the program manages it.
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in restricted)


def backup_plan(plan: Plan) -> list[str]:
    covered = plan.of_type("aws:backup/selection:Selection")
    return [] if covered else sorted(r.name for r in plan.of_type("aws:ebs/volume:Volume"))


def ssm_managed(plan: Plan) -> list[str]:
    managed_roles = {u for r in plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                     if unwrap(r.inputs).get("policyArn", "").endswith("/AmazonSSMManagedInstanceCore")
                     for u in r.property_dependencies.get("role", [])}
    profiles = {p.urn for p in plan.of_type("aws:iam/instanceProfile:InstanceProfile")
                if set(p.property_dependencies.get("role", [])) & managed_roles}
    return sorted(r.name for r in plan.of_type("aws:ec2/instance:Instance")
                  if not set(r.property_dependencies.get("iamInstanceProfile", [])) & profiles)


# ------------------------------------------------------------------------------ checks: IAM

def _iam_documents(plan: Plan) -> Iterable[tuple[Registration, dict[str, Any]]]:
    for r, doc in _policy_documents(plan):
        if r.type.startswith("aws:iam/"):
            yield r, doc


def no_admin(plan: Plan) -> list[str]:
    return sorted({r.name for r, doc in _iam_documents(plan) for s in _statements(doc)
                   if s.get("Effect") == "Allow" and "*" in _listed(s.get("Action")) and "*" in _listed(s.get("Resource"))})


def no_user_policies(plan: Plan) -> list[str]:
    return sorted(r.name for r in plan.resources if r.type in (
        "aws:iam/userPolicy:UserPolicy", "aws:iam/userPolicyAttachment:UserPolicyAttachment"))


def keys_rotate(plan: Plan) -> list[str]:
    users = {u.urn: unwrap(u.inputs).get("tags") or {} for u in plan.of_type("aws:iam/user:User")}
    bad = []
    for key in plan.of_type("aws:iam/accessKey:AccessKey"):
        tags = [users.get(u, {}) for u in key.property_dependencies.get("user", [])]
        days = [int(t.get("sos-key-rotation-days", 0)) for t in tags]
        if key.replacement_trigger is None or not days or not all(0 < d <= MAX_KEY_AGE_DAYS for d in days):
            bad.append(key.name)
    return sorted(bad)


def idle_keys_short(plan: Plan) -> list[str]:
    """The standby key idles for the half period after the other slot's rotation."""
    bad = []
    for user in plan.of_type("aws:iam/user:User"):
        days = int((unwrap(user.inputs).get("tags") or {}).get("sos-key-rotation-days", 0))
        if days and days - days // 2 > UNUSED_DAYS:
            bad.append(user.name)
    return sorted(bad)


def no_console_passwords(plan: Plan) -> list[str]:
    return sorted(r.name for r in plan.of_type("aws:iam/userLoginProfile:UserLoginProfile"))


def users_have_mfa(plan: Plan) -> list[str]:
    with_mfa = {u for r in plan.of_type("aws:iam/virtualMfaDevice:VirtualMfaDevice")
                for u in r.property_dependencies.get("user", [])}
    return sorted(u.name for u in plan.of_type("aws:iam/user:User") if u.urn not in with_mfa)


def no_service_wildcards(plan: Plan) -> list[str]:
    return sorted({r.name for r, doc in _iam_documents(plan) for s in _statements(doc)
                   if s.get("Effect") == "Allow" and any(str(a).endswith(":*") for a in _listed(s.get("Action")))})
