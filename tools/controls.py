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

`python -m tools.docs` renders the README's summary and docs/security.md's table from the plans; tests/test_controls.py checks
that table, the expected statuses, that every check can fail, and a real scanner (checkov)
over the same plan translated for the AWS provider.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from offline.harness import Plan
from tools.control_checks import (
    HIGH_RISK_PORTS,
    access_logged,
    backup_plan,
    default_nacl_restricted,
    default_sg_closed,
    ec2_endpoint,
    eips_attached,
    flow_logged,
    idle_keys_short,
    imdsv2,
    keys_rotate,
    kms_encrypted,
    lifecycle,
    mfa_delete,
    no_acls,
    no_admin,
    no_auto_public_ip,
    no_console_passwords,
    no_other_accounts,
    no_public_grant,
    no_public_ip,
    no_service_wildcards,
    no_user_policies,
    notifications,
    object_lock,
    one_eni,
    open_to_world,
    public_access_blocked,
    replicated,
    snapshots_private,
    ssm_managed,
    tls_only,
    users_have_mfa,
    versioned,
    versioned_with_lifecycle,
    volumes_encrypted,
)

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
            "Public access block on every bucket; no policy allows `*`.", no_public_grant),
    Control("S3.3", "S3 buckets should prohibit public write access", "met",
            "As S3.2.", no_public_grant),
    Control("S3.5", "S3 buckets should require requests to use SSL", "met",
            "Every bucket policy denies `aws:SecureTransport: false`.", tls_only),
    Control("S3.6", "S3 permissions granted to other AWS accounts should be restricted", "met",
            "No bucket policy names another account; the log bucket admits two AWS log delivery "
            "services, each for its prefix and this account's sources only.", no_other_accounts),
    Control("S3.7", "S3 buckets should use cross-Region replication", "not-met",
            "Not kept: a second region doubles storage for a site that runs in one region anyway; "
            "deletion, the risk that remains, is answered by versioning and the backups' Object Lock.",
            replicated),
    Control("S3.8", "S3 Block Public Access should be enabled at the bucket level", "met",
            "All four switches on every bucket.", public_access_blocked),
    Control("S3.9", "S3 bucket server access logging should be enabled", "met-except",
            "Every data bucket logs to the log bucket; the log bucket itself does not (logging it into "
            "itself would loop, into another bucket would need a bucket for that one).", access_logged,
            frozenset({"storage-logs"})),
    Control("S3.10", "S3 buckets with versioning enabled should have lifecycle policies", "met",
            "Every bucket expires noncurrent versions and aborts incomplete uploads.", versioned_with_lifecycle),
    Control("S3.11", "S3 buckets should have event notifications enabled", "not-met",
            "Not kept: nothing consumes them; requests are in the access logs.", notifications),
    Control("S3.12", "ACLs should not be used to manage user access to buckets", "met",
            "`BucketOwnerEnforced` on every bucket: ACLs are off.", no_acls),
    Control("S3.13", "S3 buckets should have lifecycle policies configured", "met",
            "See S3.10; the backups and the logs also expire by age.", lifecycle),
    Control("S3.14", "S3 buckets should have versioning enabled", "met", "Every bucket.", versioned),
    Control("S3.15", "S3 buckets should have Object Lock enabled", "met-except",
            "The backups bucket in production, compliance mode for `backupRetentionDays`. Content and "
            "images are edited and deleted by the API by design (versioning keeps them recoverable for "
            "`noncurrentVersionDays`); logs expire by lifecycle; staging's backups are not locked so "
            "the stack can be torn down.", object_lock,
            frozenset({"storage-content", "storage-images", "storage-logs", "storage-backups@staging"})),
    Control("S3.17", "S3 buckets should be encrypted at rest with AWS KMS keys", "not-met",
            "SSE-S3 (AES-256) with bucket keys: S3 server access logs can only be delivered to an SSE-S3 "
            "bucket, and pgBackRest encrypts the backups (AES-256-CBC) before they leave the host.",
            kms_encrypted),
    Control("S3.19", "S3 access points should have block public access settings enabled", "n/a",
            "No access points."),
    Control("S3.20", "S3 buckets should have MFA delete enabled", "not-met",
            "MFA delete can only be switched on by the root user with an MFA device, outside any IaC; "
            "the backups are protected more strongly by Object Lock (S3.15).", mfa_delete),
    # EC2, VPC, EBS
    Control("EC2.1", "EBS snapshots should not be publicly restorable", "met",
            "DLM's daily snapshots are private; nothing shares them.", snapshots_private),
    Control("EC2.2", "VPC default security groups should not allow inbound or outbound traffic", "met",
            "The default group of the VPC is stripped of every rule.", default_sg_closed),
    Control("EC2.3", "Attached EBS volumes should be encrypted at rest", "met",
            "Root and data volumes.", volumes_encrypted),
    Control("EC2.4", "Stopped EC2 instances should be removed after a specified time period", "operational",
            "The host runs; a stopped host is an incident, not a leftover."),
    Control("EC2.6", "VPC flow logging should be enabled in all VPCs", "met",
            "All traffic, one-minute records, to the log bucket (`logRetentionDays`).", flow_logged),
    _account("EC2.7", "EBS default encryption should be enabled", ACCOUNT_BASELINE +
             " Every volume here is encrypted explicitly (EC2.3)."),
    Control("EC2.8", "EC2 instances should use IMDSv2", "met",
            "`httpTokens: required`, hop limit 1 (containers cannot reach it).", imdsv2),
    Control("EC2.9", "EC2 instances should not have a public IPv4 address", "not-met",
            "Kept on the single-host placement: Cloudflare reaches the host at its Elastic IP, and the "
            "security group admits 80/443 from Cloudflare's ranges and 22 from `adminCidrs` only. A load "
            "balancer in front would cost more than the host; the cluster placement puts tasks in private "
            "subnets.", no_public_ip),
    Control("EC2.10", "EC2 should be configured to use VPC endpoints for the EC2 service", "not-met",
            "Nothing on the host calls the EC2 API; an interface endpoint would cost about $7/month for "
            "no traffic.", ec2_endpoint),
    Control("EC2.12", "Unused EC2 EIPs should be removed", "met",
            "The one Elastic IP is associated with the host's interface.", eips_attached),
    Control("EC2.13", "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 22", "met",
            "SSH from `adminCidrs` only (0.0.0.0/0 is refused by the settings).",
            lambda plan: open_to_world(plan, [22])),
    Control("EC2.14", "Security groups should not allow ingress from 0.0.0.0/0 or ::/0 to port 3389", "met",
            "Nothing admits 3389.", lambda plan: open_to_world(plan, [3389])),
    Control("EC2.15", "EC2 subnets should not automatically assign public IP addresses", "met",
            "`mapPublicIpOnLaunch: false`; the host's address is its Elastic IP.", no_auto_public_ip),
    Control("EC2.16", "Unused network access control lists should be removed", "met",
            "None created.", lambda plan: sorted(r.name for r in plan.of_type("aws:ec2/networkAcl:NetworkAcl"))),
    Control("EC2.17", "EC2 instances should not use multiple ENIs", "met",
            "One interface, the primary.", one_eni),
    Control("EC2.18", "Security groups should only allow unrestricted incoming traffic for authorized ports",
            "met", "No rule admits 0.0.0.0/0 or ::/0 at all.", lambda plan: open_to_world(plan)),
    Control("EC2.19", "Security groups should not allow unrestricted access to ports with high risk", "met",
            "As EC2.18.", lambda plan: open_to_world(plan, HIGH_RISK_PORTS)),
    Control("EC2.21", "Network ACLs should not allow ingress from 0.0.0.0/0 to port 22 or port 3389", "not-met",
            "The VPC's default network ACL is left as AWS creates it (all traffic); filtering is the "
            "security group's (EC2.13, EC2.18). A stateless ACL must also admit return traffic on the "
            "ephemeral ports and is kept for the cluster placement's network.", default_nacl_restricted),
    Control("EC2.28", "EBS volumes should be covered by a backup plan", "not-met",
            "Not by AWS Backup: DLM takes daily snapshots of the data volume (`snapshotRetentionDays`) and "
            "pgBackRest and the backup jobs copy the data to S3; the root volume is rebuilt by cloud-init.",
            backup_plan),
    Control("SSM.1", "EC2 instances should be managed by AWS Systems Manager", "met",
            "The instance role carries `AmazonSSMManagedInstanceCore` only.", ssm_managed),
    Control("SSM.2", "Instances managed by Systems Manager should be compliant with patching requirements",
            "operational", "Ubuntu's unattended-upgrades on the host; no SSM patch baseline is set."),
    Control("SSM.3", "Instances managed by Systems Manager should have an association compliance status of "
            "COMPLIANT", "n/a", "No State Manager associations."),
    # IAM
    Control("IAM.1", "IAM policies should not allow full '*' administrative privileges", "met",
            "Each policy names its actions and resources.", no_admin),
    Control("IAM.2", "IAM users should not have IAM policies attached", "met",
            "The policies sit on groups (one per identity); users only belong to them.", no_user_policies),
    Control("IAM.3", "IAM users' access keys should be rotated every 90 days or less", "met",
            "Two keys per identity, each replaced every `accessKeyRotationDays` (90 at most) by `pulumi up`; "
            "the AccessKeyRotationOverdue alert fires when one is older.", keys_rotate),
    _account("IAM.4", "IAM root user access key should not exist", ACCOUNT_BASELINE),
    Control("IAM.5", "MFA should be enabled for all IAM users that have a console password", "met",
            "No user has a console password.", no_console_passwords),
    _account("IAM.6", "Hardware MFA should be enabled for the root user", ACCOUNT_BASELINE),
    _account("IAM.7", "Password policies for IAM users should have strong configurations", ACCOUNT_BASELINE),
    Control("IAM.8", "Unused IAM user credentials should be removed", "met",
            "Every key is in use or the standby of a rotation (see IAM.22).", idle_keys_short),
    _account("IAM.9", "MFA should be enabled for the root user", ACCOUNT_BASELINE),
    _account("IAM.10", "Password policies for IAM users should have strong AWS Configurations", ACCOUNT_BASELINE),
    Control("IAM.19", "MFA should be enabled for all IAM users", "not-met",
            "The four users are machine identities for containers that cannot take a role (IMDS is out of "
            "their reach); they cannot present MFA. Each may only do what its group's policy names.",
            users_have_mfa),
    Control("IAM.21", "IAM customer managed policies should not allow wildcard actions for services", "met",
            "Actions are listed one by one.", no_service_wildcards),
    Control("IAM.22", "IAM user credentials unused for 45 days should be removed", "met",
            "The standby key idles for the second half of its period: 45 days at the most at the default "
            "90.", idle_keys_short),
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
