"""The AWS Foundational Security Best Practices (FSBP) controls that bear on what this program
creates on AWS, each checked against the offline plan of staging and production.

The list is the FSBP requirement set of prowler's compliance mapping
(prowler-cloud/prowler, prowler/compliance/aws/aws_foundational_security_best_practices_aws.json,
commit 3e000fa, 2026-08-21) for the services the host placement uses: S3, EC2 (with EBS and
VPC), IAM, SSM, and the account-wide controls those services raise. A control is

- checked: `check(plan)` names the planned resources that fail it; the status is computed, and
  `expected` says what this program means it to be (a test holds the two together);
- account: decided by the AWS account's own baseline, which no single stack should own;
- operational: decided by how the account is run over time, not by a plan.

`python -m tools.docs` renders the README's table from the plans; tests/test_controls.py checks
that table, the expected statuses, that every check can fail, and a real scanner (checkov)
over the same plan translated for the AWS provider.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from offline.harness import Plan, Registration, unwrap

BUCKET = "aws:s3/bucket:Bucket"
HIGH_RISK_PORTS = (20, 21, 22, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 3389, 4333, 5000, 5432,
                   5500, 5601, 8080, 8088, 8888, 9200, 9300)
MAX_KEY_AGE_DAYS = 90
# IAM.22: a credential unused this long counts as unused.
UNUSED_DAYS = 45

Check = Callable[[Plan], list[str]]


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    # "met", "met-except" (the resources in `exceptions` fail it, on purpose), "not-met",
    # "account", "operational", "n/a" (nothing of the kind is created).
    expected: str
    note: str
    check: Check | None = None
    exceptions: frozenset[str] = field(default_factory=frozenset)


# ------------------------------------------------------------------------------ plan helpers

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


def _open_to_world(plan: Plan, ports: Iterable[int] | None = None) -> list[str]:
    wanted = list(ports) if ports is not None else None
    return sorted({r.name for r, low, high, cidr in _ingress(plan) if cidr in ("0.0.0.0/0", "::/0")
                   and (wanted is None or any(low <= p <= high for p in wanted))})


# ------------------------------------------------------------------------------ checks: S3

def _public_access_blocked(plan: Plan) -> list[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    return _buckets_without(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                            lambda i: all(i.get(f) is True for f in flags))


def _no_public_grant(plan: Plan) -> list[str]:
    bad = [r.name for r, doc in _policy_documents(plan) if r.type == "aws:s3/bucketPolicy:BucketPolicy"
           for s in _statements(doc) if s.get("Effect") == "Allow" and s.get("Principal") in ("*", {"AWS": "*"})]
    acl = [r.name for r in plan.of_type(BUCKET) if unwrap(r.inputs).get("acl", "private") != "private"]
    return sorted(set(bad + acl + _public_access_blocked(plan)))


def _tls_only(plan: Plan) -> list[str]:
    def denies_plain(i: dict[str, Any]) -> bool:
        return any(s.get("Effect") == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in _statements(json.loads(i["policy"])))
    return _buckets_without(plan, "aws:s3/bucketPolicy:BucketPolicy", denies_plain)


def _no_other_accounts(plan: Plan) -> list[str]:
    return sorted({r.name for r, doc in _policy_documents(plan) if r.type == "aws:s3/bucketPolicy:BucketPolicy"
                   for s in _statements(doc) if s.get("Effect") == "Allow"
                   and isinstance(s.get("Principal"), dict) and "AWS" in s["Principal"]})


def _access_logged(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketLogging:BucketLogging")


def _lifecycle(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                            lambda i: any(rule.get("status") == "Enabled" for rule in i.get("rules") or []))


def _versioned(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketVersioning:BucketVersioning",
                            lambda i: i.get("versioningConfiguration", {}).get("status") == "Enabled")


def _versioned_with_lifecycle(plan: Plan) -> list[str]:
    """Versioned buckets without an enabled lifecycle rule."""
    return sorted(set(_lifecycle(plan)) - set(_versioned(plan)))


def _no_acls(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
                            lambda i: i.get("rule", {}).get("objectOwnership") == "BucketOwnerEnforced")


def _object_lock(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration",
                            lambda i: bool(i.get("rule", {}).get("defaultRetention")))


def _kms_encrypted(plan: Plan) -> list[str]:
    return _buckets_without(
        plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        lambda i: any(rule.get("applyServerSideEncryptionByDefault", {}).get("sseAlgorithm", "").startswith("aws:kms")
                      for rule in i.get("rules") or []))


def _replicated(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketReplicationConfig:BucketReplicationConfig")


def _notifications(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketNotification:BucketNotification")


def _mfa_delete(plan: Plan) -> list[str]:
    return _buckets_without(plan, "aws:s3/bucketVersioning:BucketVersioning",
                            lambda i: i.get("versioningConfiguration", {}).get("mfaDelete") == "Enabled")


# ------------------------------------------------------------------------------ checks: EC2, VPC, EBS

def _snapshots_private(plan: Plan) -> list[str]:
    return [r.name for r in plan.of_type("aws:ebs/snapshotCreateVolumePermission:SnapshotCreateVolumePermission")]


def _default_sg_closed(plan: Plan) -> list[str]:
    closed = {u for r in plan.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
              if not unwrap(r.inputs).get("ingress") and not unwrap(r.inputs).get("egress")
              for u in r.property_dependencies.get("vpcId", [])}
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in closed)


def _volumes_encrypted(plan: Plan) -> list[str]:
    bad = [r.name for r in plan.of_type("aws:ebs/volume:Volume") if unwrap(r.inputs).get("encrypted") is not True]
    bad += [r.name for r in plan.of_type("aws:ec2/instance:Instance")
            if (unwrap(r.inputs).get("rootBlockDevice") or {}).get("encrypted") is not True]
    return sorted(bad)


def _flow_logged(plan: Plan) -> list[str]:
    logged = {u for r in plan.of_type("aws:ec2/flowLog:FlowLog") if unwrap(r.inputs).get("trafficType") == "ALL"
              for u in r.property_dependencies.get("vpcId", [])}
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in logged)


def _imdsv2(plan: Plan) -> list[str]:
    return sorted(r.name for r in plan.of_type("aws:ec2/instance:Instance")
                  if (unwrap(r.inputs).get("metadataOptions") or {}).get("httpTokens") != "required")


def _no_public_ip(plan: Plan) -> list[str]:
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


def _ec2_endpoint(plan: Plan) -> list[str]:
    served = {u for r in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
              if str(unwrap(r.inputs).get("serviceName", "")).endswith(".ec2") for u in r.property_dependencies.get("vpcId", [])}
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in served)


def _eips_attached(plan: Plan) -> list[str]:
    attached = {u for a in plan.of_type("aws:ec2/eipAssociation:EipAssociation")
                for u in a.property_dependencies.get("allocationId", [])}
    return sorted(e.name for e in plan.of_type("aws:ec2/eip:Eip") if e.urn not in attached and not unwrap(e.inputs).get("instance"))


def _no_auto_public_ip(plan: Plan) -> list[str]:
    return sorted(s.name for s in plan.of_type("aws:ec2/subnet:Subnet") if unwrap(s.inputs).get("mapPublicIpOnLaunch"))


def _one_eni(plan: Plan) -> list[str]:
    attached: dict[str, int] = {}
    for a in plan.of_type("aws:ec2/networkInterfaceAttachment:NetworkInterfaceAttachment"):
        for u in a.property_dependencies.get("instance", []):
            attached[u] = attached.get(u, 0) + 1
    return sorted(r.name for r in plan.of_type("aws:ec2/instance:Instance") if attached.get(r.urn, 0) > 0)


def _default_nacl_restricted(plan: Plan) -> list[str]:
    restricted = {u for r in plan.of_type("aws:ec2/defaultNetworkAcl:DefaultNetworkAcl")
                  for u in r.property_dependencies.get("defaultNetworkAclId", [])}
    # A VPC's default network ACL admits everything unless the program manages it.
    return sorted(v.name for v in plan.of_type("aws:ec2/vpc:Vpc") if v.urn not in restricted)


def _backup_plan(plan: Plan) -> list[str]:
    covered = plan.of_type("aws:backup/selection:Selection")
    return [] if covered else sorted(r.name for r in plan.of_type("aws:ebs/volume:Volume"))


def _ssm_managed(plan: Plan) -> list[str]:
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


def _no_admin(plan: Plan) -> list[str]:
    return sorted({r.name for r, doc in _iam_documents(plan) for s in _statements(doc)
                   if s.get("Effect") == "Allow" and "*" in _listed(s.get("Action")) and "*" in _listed(s.get("Resource"))})


def _no_user_policies(plan: Plan) -> list[str]:
    return sorted(r.name for r in plan.resources if r.type in (
        "aws:iam/userPolicy:UserPolicy", "aws:iam/userPolicyAttachment:UserPolicyAttachment"))


def _keys_rotate(plan: Plan) -> list[str]:
    users = {u.urn: unwrap(u.inputs).get("tags") or {} for u in plan.of_type("aws:iam/user:User")}
    bad = []
    for key in plan.of_type("aws:iam/accessKey:AccessKey"):
        tags = [users.get(u, {}) for u in key.property_dependencies.get("user", [])]
        days = [int(t.get("sos-key-rotation-days", 0)) for t in tags]
        if key.replacement_trigger is None or not days or not all(0 < d <= MAX_KEY_AGE_DAYS for d in days):
            bad.append(key.name)
    return sorted(bad)


def _idle_keys_short(plan: Plan) -> list[str]:
    """The standby key idles for the half period after the other slot's rotation."""
    bad = []
    for user in plan.of_type("aws:iam/user:User"):
        days = int((unwrap(user.inputs).get("tags") or {}).get("sos-key-rotation-days", 0))
        if days and days - days // 2 > UNUSED_DAYS:
            bad.append(user.name)
    return sorted(bad)


def _no_console_passwords(plan: Plan) -> list[str]:
    return sorted(r.name for r in plan.of_type("aws:iam/userLoginProfile:UserLoginProfile"))


def _users_have_mfa(plan: Plan) -> list[str]:
    with_mfa = {u for r in plan.of_type("aws:iam/virtualMfaDevice:VirtualMfaDevice")
                for u in r.property_dependencies.get("user", [])}
    return sorted(u.name for u in plan.of_type("aws:iam/user:User") if u.urn not in with_mfa)


def _no_service_wildcards(plan: Plan) -> list[str]:
    return sorted({r.name for r, doc in _iam_documents(plan) for s in _statements(doc)
                   if s.get("Effect") == "Allow" and any(str(a).endswith(":*") for a in _listed(s.get("Action")))})


# ------------------------------------------------------------------------------ the table

def _account(id_: str, title: str, note: str) -> Control:
    return Control(id_, title, "account", note)


ACCOUNT_BASELINE = ("Account-wide: set once per account by its owner (AWS Organizations, Control Tower or the "
                    "account's baseline stack), never by one application's stack.")

CONTROLS: tuple[Control, ...] = (
    # S3
    _account("S3.1", "S3 Block Public Access setting should be enabled (account)",
             ACCOUNT_BASELINE + " Every bucket here blocks all public access itself (S3.8)."),
    Control("S3.2", "S3 buckets should prohibit public read access", "met",
            "Public access block on every bucket; no policy allows `*`.", _no_public_grant),
    Control("S3.3", "S3 buckets should prohibit public write access", "met",
            "As S3.2.", _no_public_grant),
    Control("S3.5", "S3 buckets should require requests to use SSL", "met",
            "Every bucket policy denies `aws:SecureTransport: false`.", _tls_only),
    Control("S3.6", "S3 permissions granted to other AWS accounts should be restricted", "met",
            "No bucket policy names another account; the log bucket admits two AWS log delivery "
            "services, each for its prefix and this account's sources only.", _no_other_accounts),
    Control("S3.7", "S3 buckets should use cross-Region replication", "not-met",
            "Not kept: a second region doubles storage for a site that runs in one region anyway; "
            "deletion, the risk that remains, is answered by versioning and the backups' Object Lock.",
            _replicated),
    Control("S3.8", "S3 Block Public Access should be enabled at the bucket level", "met",
            "All four switches on every bucket.", _public_access_blocked),
    Control("S3.9", "S3 bucket server access logging should be enabled", "met-except",
            "Every data bucket logs to the log bucket; the log bucket itself does not (logging it into "
            "itself would loop, into another bucket would need a bucket for that one).", _access_logged,
            frozenset({"storage-logs"})),
    Control("S3.10", "S3 buckets with versioning enabled should have lifecycle policies", "met",
            "Every bucket expires noncurrent versions and aborts incomplete uploads.", _versioned_with_lifecycle),
    Control("S3.11", "S3 buckets should have event notifications enabled", "not-met",
            "Not kept: nothing consumes them; requests are in the access logs.", _notifications),
    Control("S3.12", "ACLs should not be used to manage user access to buckets", "met",
            "`BucketOwnerEnforced` on every bucket: ACLs are off.", _no_acls),
    Control("S3.13", "S3 buckets should have lifecycle policies configured", "met",
            "See S3.10; the backups and the logs also expire by age.", _lifecycle),
    Control("S3.14", "S3 buckets should have versioning enabled", "met", "Every bucket.", _versioned),
    Control("S3.15", "S3 buckets should have Object Lock enabled", "met-except",
            "The backups bucket in production, compliance mode for `backupRetentionDays`. Content and "
            "images are edited and deleted by the API by design (versioning keeps them recoverable for "
            "`noncurrentVersionDays`); logs expire by lifecycle; staging's backups are not locked so "
            "the stack can be torn down.", _object_lock,
            frozenset({"storage-content", "storage-images", "storage-logs", "storage-backups@staging"})),
    Control("S3.17", "S3 buckets should be encrypted at rest with AWS KMS keys", "not-met",
            "SSE-S3 (AES-256) with bucket keys: S3 server access logs can only be delivered to an SSE-S3 "
            "bucket, and pgBackRest encrypts the backups (AES-256-CBC) before they leave the host.",
            _kms_encrypted),
    Control("S3.19", "S3 access points should have block public access settings enabled", "n/a",
            "No access points."),
    Control("S3.20", "S3 buckets should have MFA delete enabled", "not-met",
            "MFA delete can only be switched on by the root user with an MFA device, outside any IaC; "
            "the backups are protected more strongly by Object Lock (S3.15).", _mfa_delete),
    # EC2, VPC, EBS
    Control("EC2.1", "EBS snapshots should not be publicly restorable", "met",
            "DLM's daily snapshots are private; nothing shares them.", _snapshots_private),
    Control("EC2.2", "VPC default security groups should not allow inbound or outbound traffic", "met",
            "The default group of the VPC is stripped of every rule.", _default_sg_closed),
    Control("EC2.3", "Attached EBS volumes should be encrypted at rest", "met",
            "Root and data volumes.", _volumes_encrypted),
    Control("EC2.4", "Stopped EC2 instances should be removed after a specified time period", "operational",
            "The host runs; a stopped host is an incident, not a leftover."),
    Control("EC2.6", "VPC flow logging should be enabled in all VPCs", "met",
            "All traffic, one-minute records, to the log bucket (`logRetentionDays`).", _flow_logged),
    _account("EC2.7", "EBS default encryption should be enabled", ACCOUNT_BASELINE +
             " Every volume here is encrypted explicitly (EC2.3)."),
    Control("EC2.8", "EC2 instances should use IMDSv2", "met",
            "`httpTokens: required`, hop limit 1 (containers cannot reach it).", _imdsv2),
    Control("EC2.9", "EC2 instances should not have a public IPv4 address", "not-met",
            "Kept on the single-host placement: Cloudflare reaches the host at its Elastic IP, and the "
            "security group admits 80/443 from Cloudflare's ranges and 22 from `adminCidrs` only. A load "
            "balancer in front would cost more than the host; the cluster placement puts tasks in private "
            "subnets.", _no_public_ip),
    Control("EC2.10", "EC2 should be configured to use VPC endpoints for the EC2 service", "not-met",
            "Nothing on the host calls the EC2 API; an interface endpoint would cost about $7/month for "
            "no traffic.", _ec2_endpoint),
    Control("EC2.12", "Unused EC2 EIPs should be removed", "met",
            "The one Elastic IP is associated with the host's interface.", _eips_attached),
    Control("EC2.13", "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 22", "met",
            "SSH from `adminCidrs` only (0.0.0.0/0 is refused by the settings).",
            lambda plan: _open_to_world(plan, [22])),
    Control("EC2.14", "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 3389", "met",
            "Nothing admits 3389.", lambda plan: _open_to_world(plan, [3389])),
    Control("EC2.15", "EC2 subnets should not automatically assign public IP addresses", "met",
            "`mapPublicIpOnLaunch: false`; the host's address is its Elastic IP.", _no_auto_public_ip),
    Control("EC2.16", "Unused network access control lists should be removed", "met",
            "None created.", lambda plan: sorted(r.name for r in plan.of_type("aws:ec2/networkAcl:NetworkAcl"))),
    Control("EC2.17", "EC2 instances should not use multiple ENIs", "met",
            "One interface, the primary.", _one_eni),
    Control("EC2.18", "Security groups should only allow unrestricted incoming traffic for authorized ports",
            "met", "No rule admits 0.0.0.0/0 or ::/0 at all.", lambda plan: _open_to_world(plan)),
    Control("EC2.19", "Security groups should not allow unrestricted access to ports with high risk", "met",
            "As EC2.18.", lambda plan: _open_to_world(plan, HIGH_RISK_PORTS)),
    Control("EC2.21", "Network ACLs should not allow ingress from 0.0.0.0/0 to port 22 or port 3389", "not-met",
            "The VPC's default network ACL is left as AWS creates it (all traffic); filtering is the "
            "security group's (EC2.13, EC2.18). A stateless ACL must also admit return traffic on the "
            "ephemeral ports and is kept for the cluster placement's network.", _default_nacl_restricted),
    Control("EC2.28", "EBS volumes should be covered by a backup plan", "not-met",
            "Not by AWS Backup: DLM takes daily snapshots of the data volume (`snapshotRetentionDays`) and "
            "pgBackRest and the backup jobs copy the data to S3; the root volume is rebuilt by cloud-init.",
            _backup_plan),
    Control("SSM.1", "EC2 instances should be managed by AWS Systems Manager", "met",
            "The instance role carries `AmazonSSMManagedInstanceCore` only.", _ssm_managed),
    Control("SSM.2", "Instances managed by Systems Manager should be compliant with patching requirements",
            "operational", "Ubuntu's unattended-upgrades on the host; no SSM patch baseline is set."),
    Control("SSM.3", "Instances managed by Systems Manager should have an association compliance status of "
            "COMPLIANT", "n/a", "No State Manager associations."),
    # IAM
    Control("IAM.1", "IAM policies should not allow full '*' administrative privileges", "met",
            "Each policy names its actions and resources.", _no_admin),
    Control("IAM.2", "IAM users should not have IAM policies attached", "met",
            "The policies sit on groups (one per identity); users only belong to them.", _no_user_policies),
    Control("IAM.3", "IAM users' access keys should be rotated every 90 days or less", "met",
            "Two keys per identity, each replaced every `accessKeyRotationDays` (90 at most) by `pulumi up`; "
            "the AccessKeyRotationOverdue alert fires when one is older.", _keys_rotate),
    _account("IAM.4", "IAM root user access key should not exist", ACCOUNT_BASELINE),
    Control("IAM.5", "MFA should be enabled for all IAM users that have a console password", "met",
            "No user has a console password.", _no_console_passwords),
    _account("IAM.6", "Hardware MFA should be enabled for the root user", ACCOUNT_BASELINE),
    _account("IAM.7", "Password policies for IAM users should have strong configurations", ACCOUNT_BASELINE),
    Control("IAM.8", "Unused IAM user credentials should be removed", "met",
            "Every key is in use or the standby of a rotation (see IAM.22).", _idle_keys_short),
    _account("IAM.9", "MFA should be enabled for the root user", ACCOUNT_BASELINE),
    _account("IAM.10", "Password policies for IAM users should have strong AWS Configurations", ACCOUNT_BASELINE),
    Control("IAM.19", "MFA should be enabled for all IAM users", "not-met",
            "The four users are machine identities for containers that cannot take a role (IMDS is out of "
            "their reach); they cannot present MFA. Each may only do what its group's policy names.",
            _users_have_mfa),
    Control("IAM.21", "IAM customer managed policies should not allow wildcard actions for services", "met",
            "Actions are listed one by one.", _no_service_wildcards),
    Control("IAM.22", "IAM user credentials unused for 45 days should be removed", "met",
            "The standby key idles for the second half of its period: 45 days at the most at the default "
            "90.", _idle_keys_short),
    Control("IAM.26", "Expired SSL/TLS certificates managed in IAM should be removed", "n/a",
            "No IAM server certificates (the edge's is Cloudflare's Origin CA)."),
    # Account-level services the audit trail relates to.
    _account("CloudTrail.1", "CloudTrail should be enabled with at least one multi-Region trail",
             ACCOUNT_BASELINE + " The backups bucket's own trail is its server access logs (S3.9)."),
    _account("Config.1", "AWS Config should be enabled", ACCOUNT_BASELINE),
    _account("Account.1", "Security contact information should be provided for an AWS account", ACCOUNT_BASELINE),
)

STATUS_TEXT = {"met": "met", "met-except": "met, except", "not-met": "not met", "account": "account",
               "operational": "operational", "n/a": "n/a"}
STACKS = ("staging", "production")


def failures(control: Control, plans: dict[str, Plan]) -> dict[str, list[str]]:
    """Stack -> resources failing the control (an exception for one stack is `name@stack`)."""
    if control.check is None:
        return {}
    return {stack: control.check(plan) for stack, plan in plans.items()}


def status(control: Control, plans: dict[str, Plan]) -> str:
    if control.check is None:
        return control.expected
    failing = {f"{name}@{stack}" for stack, names in failures(control, plans).items() for name in names}
    if not failing:
        return "met"
    allowed = {e if "@" in e else f"{e}@{stack}" for e in control.exceptions for stack in plans}
    return "met-except" if failing <= allowed else "not-met"


def table(plans: dict[str, Plan]) -> str:
    lines = ["| Control | Title | Status | How, or why not |", "|---|---|---|---|"]
    for control in CONTROLS:
        state = status(control, plans)
        text = STATUS_TEXT[state]
        if state == "met-except":
            names = sorted({e.split("@")[0] + (f" ({e.split('@')[1]})" if "@" in e else "")
                            for e in control.exceptions})
            text += " " + ", ".join(f"`{n}`" for n in names)
        lines.append(f"| {control.id} | {control.title} | {text} | {control.note} |")
    return "\n".join(lines)


def summary(plans: dict[str, Plan]) -> str:
    """The README's short form: each control under its status, per service."""
    columns = (("met",), ("met-except",), ("not-met",), ("account", "operational", "n/a"))
    rows: dict[str, list[list[str]]] = {}
    for control in CONTROLS:
        service = control.id.split(".")[0]
        service = service if service in ("S3", "EC2", "SSM", "IAM") else "Account"
        state = status(control, plans)
        cells = rows.setdefault(service, [[] for _ in columns])
        column = next(i for i, states in enumerate(columns) if state in states)
        cells[column].append(control.id + (f" ({STATUS_TEXT[state]})" if state in ("operational", "n/a") else ""))
    lines = ["| Service | Met | Met, with exceptions | Not met: a kept trade-off | The account's (or noted) |",
             "|---|---|---|---|---|"]
    lines += [f"| {service} | " + " | ".join(", ".join(c) or "—" for c in cells) + " |"
              for service, cells in rows.items()]
    return "\n".join(lines)


def plans() -> dict[str, Plan]:
    from offline import harness

    return {stack: harness.run(stack) for stack in STACKS}
