"""The platform's mandatory policies, as plain functions over a resource's type, properties,
options and stack: the Pulumi engine calls them through the pack in __main__.py at
`pulumi preview/up --policy-pack policy`, and tools/policy.py calls the same functions over the
offline plan of every stack in CI.

A policy sees property values but not their secrecy, so secrets are checked by what can be seen:
credential-looking variables must be declared as coming from secrets (ContainerService labels
them), secret files must be private, and command lines must carry no credentials.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cloudflare_ranges import CF_IPV4, CF_IPV6

CLOUDFLARE = [ipaddress.ip_network(c) for c in CF_IPV4 + CF_IPV6]
# RFC 1918 and unique local addresses: what a VPC's own network can be.
VPC_RANGES = [ipaddress.ip_network(c) for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]
EDGE_SERVICE = "nginx"
CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_KEY$|_PASS$|ENCRYPTION_KEY|DATABASE_URL|REDIS_URL)")
CREDENTIAL_ASSIGNMENT = re.compile(r"\b[A-Z0-9_]*(PASSWORD|SECRET|TOKEN|_PASS)[A-Z0-9_]*=(?!\"?\$|\"?/)\S")
# What holds the platform's data or the keys to it: protected in production.
STATEFUL_DOCKER_VOLUMES = re.compile(r"-(postgres|redis|n8n|prometheus|grafana)-data$")
STATEFUL_TYPES = {"aws:s3/bucket:Bucket", "aws:ebs/volume:Volume",
                 "aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup",
                 "aws:backup/vault:Vault"}
# Generated secrets whose loss loses data: n8n's stored credentials, the encrypted backups. The
# others are rotated by replacing them (docs/security.md), so they are not protected. The pack
# runs apart from the program; tests/test_policy.py checks this list is configs/secrets.py's.
IRREPLACEABLE_SECRETS = re.compile(r"-(n8nEncryptionKey|backupCipher)$")
# Replacing one of these stops the database or the cache: never by accident in production.
DATA_SERVICES = {"postgres", "redis"}
ALLOW_DATA_REPLACEMENT = "policy/allow-data-replacement.json"


@dataclass(frozen=True)
class Resource:
    """What a policy needs of a resource: the same fields from the engine or the offline plan."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    protect: bool = False

    @property
    def stack(self) -> str:
        # urn:pulumi:<stack>::<project>::<type path>::<name>
        return self.urn.split(":", 3)[2].split("::")[0] if self.urn.startswith("urn:pulumi:") else ""


Report = Callable[[str], None]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    types: frozenset[str]
    check: Callable[[Resource, Report], None]


# Docker Hub's registry under the names a reference may give it.
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


def _labels(props: Mapping[str, Any]) -> dict[str, str]:
    return {item["label"]: item["value"] for item in props.get("labels") or []}


def _csv(value: str | None) -> set[str]:
    return {v for v in (value or "").split(",") if v}


# --- S3 ----------------------------------------------------------------------------------------

def public_access_blocked(r: Resource, report: Report) -> None:
    for key in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        if r.props.get(key) is not True:
            report(f"{key} must be true")


def encrypted_at_rest(r: Resource, report: Report) -> None:
    rules = r.props.get("rules") or []
    algorithms = {(rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for rule in rules}
    if not rules or not algorithms <= {"AES256", "aws:kms", "aws:kms:dsse"}:
        report("every bucket rule must apply SSE-S3 or SSE-KMS by default")


def versioned(r: Resource, report: Report) -> None:
    if (r.props.get("versioningConfiguration") or {}).get("status") != "Enabled":
        report("versioning must be Enabled")


def tls_only(r: Resource, report: Report) -> None:
    import json

    policy = r.props.get("policy")
    try:
        doc = json.loads(policy) if isinstance(policy, str) else policy or {}
    except ValueError:
        doc = {}
    denies = [s for s in doc.get("Statement", []) if s.get("Effect") == "Deny"
              and (s.get("Condition") or {}).get("Bool", {}).get("aws:SecureTransport") in ("false", False)]
    if not denies:
        report("the bucket policy must deny requests without TLS (aws:SecureTransport false)")


# --- EC2 ---------------------------------------------------------------------------------------

def imdsv2_required(r: Resource, report: Report) -> None:
    if (r.props.get("metadataOptions") or {}).get("httpTokens") != "required":
        report("metadataOptions.httpTokens must be 'required' (IMDSv2)")


def volumes_encrypted(r: Resource, report: Report) -> None:
    if r.type == "aws:ec2/instance:Instance":
        if (r.props.get("rootBlockDevice") or {}).get("encrypted") is not True:
            report("the root volume must be encrypted")
    elif r.props.get("encrypted") is not True:
        report("the volume must be encrypted")


def _ingress_networks(props: Mapping[str, Any]) -> list[tuple[int, int, str]]:
    rules = []
    if "fromPort" in props:  # aws:vpc/securityGroupIngressRule
        cidr = props.get("cidrIpv4") or props.get("cidrIpv6")
        if cidr:
            rules.append((int(props["fromPort"]), int(props.get("toPort", props["fromPort"])), cidr))
    for inline in props.get("ingress") or []:  # inline rules on aws:ec2/securityGroup
        for cidr in (inline.get("cidrBlocks") or []) + (inline.get("ipv6CidrBlocks") or []):
            rules.append((int(inline.get("fromPort", 0)), int(inline.get("toPort", 65535)), cidr))
    return rules


def no_ssh_from_anywhere(r: Resource, report: Report) -> None:
    for low, high, cidr in _ingress_networks(r.props):
        if low <= 22 <= high and ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            report(f"SSH (22) open to {cidr}")


def web_only_from_cloudflare(r: Resource, report: Report) -> None:
    for low, high, cidr in _ingress_networks(r.props):
        if any(low <= port <= high for port in (80, 443)):
            network = ipaddress.ip_network(cidr, strict=False)
            # Inside the VPC (the cluster's interface endpoints take HTTPS from their own network).
            if any(network.version == own.version and network.subnet_of(own) for own in VPC_RANGES):  # type: ignore[arg-type]
                continue
            if not any(network.version == cf.version and network.subnet_of(cf) for cf in CLOUDFLARE):  # type: ignore[arg-type]
                report(f"ports 80/443 open to {cidr}, which is not a Cloudflare range")


# --- Docker ------------------------------------------------------------------------------------

def container_hardened(r: Resource, report: Report) -> None:
    p = r.props
    outs = _csv(_labels(p).get("sos.opt-outs"))
    user = str(p.get("user") or "")
    if "runs-as-root" not in outs and (not user or user.split(":")[0] in ("0", "root")):
        report("must run as a non-root user (or name the runs-as-root opt-out)")
    if "writable-rootfs" not in outs and p.get("readOnly") is not True:
        report("the root filesystem must be read-only")
    if (p.get("capabilities") or {}).get("drops") != ["ALL"]:
        report("must drop ALL capabilities")
    if "no-new-privileges:true" not in (p.get("securityOpts") or []):
        report("must set no-new-privileges")
    if not p.get("memory") or not p.get("cpus"):
        report("must have memory and CPU limits")
    if "no-healthcheck" not in outs and not (p.get("healthcheck") or {}).get("tests"):
        report("must have a healthcheck (or name the no-healthcheck opt-out)")
    if p.get("logDriver") != "json-file" or not (p.get("logOpts") or {}).get("max-size"):
        report("logs must rotate (json-file with max-size)")
    if not str(p.get("image", "")).startswith("sha256:"):
        report("must run a pulled image by its digest, not a tag")


def image_pinned(r: Resource, report: Report) -> None:
    ref = str(r.props.get("name", ""))
    tag = ref.rsplit("/", 1)[-1]
    if ":" not in tag or tag.endswith(":latest"):
        report(f"image {ref!r} must be pinned to a version")


def no_published_ports(r: Resource, report: Report) -> None:
    service = _labels(r.props).get("service")
    for port in r.props.get("ports") or []:
        ip = port.get("ip") or "0.0.0.0"
        if service == EDGE_SERVICE:
            continue
        if not ipaddress.ip_address(ip).is_loopback:
            report(f"{service} publishes {port.get('external')} on {ip}; only the edge proxy may publish")


def protected_in_production(r: Resource, report: Report) -> None:
    if r.stack != "production":
        return
    stateful = r.type in STATEFUL_TYPES or (
        r.type == "docker:index/volume:Volume" and STATEFUL_DOCKER_VOLUMES.search(str(r.props.get("name", "")))) or (
        r.type == "random:index/randomPassword:RandomPassword" and IRREPLACEABLE_SECRETS.search(r.name))
    if stateful and not r.protect:
        report("stateful resource must be protected in production")


def data_containers_protected(r: Resource, report: Report) -> None:
    service = _labels(r.props).get("service")
    if r.stack == "production" and service in DATA_SERVICES and not r.protect:
        report(f"the {service} container must be protected in production, so that no change replaces it "
               "unnoticed; a deploy that means to replace it sets storiesofsoftware:allowDataReplacement "
               f"to true and runs with --policy-pack-config {ALLOW_DATA_REPLACEMENT}")


def no_plain_credentials(r: Resource, report: Report) -> None:
    if r.type == "docker:index/container:Container":
        declared = _csv(_labels(r.props).get("sos.secret-env"))
        for entry in r.props.get("envs") or []:
            name = str(entry).split("=", 1)[0]
            # Paths to secrets (…_FILE, …_DIR) are not secrets themselves.
            if CREDENTIAL_NAME.search(name) and not name.endswith(("_FILE", "_DIR", "_PATH")) and name not in declared:
                report(f"{name} looks like a credential but is not passed as a secret")
        for upload in r.props.get("uploads") or []:
            _secret_file_private(str(upload.get("file", "")), str(upload.get("permissions")), report)
        for arg in (r.props.get("command") or []) + (r.props.get("entrypoints") or []):
            if CREDENTIAL_ASSIGNMENT.search(str(arg)):
                report("a command line carries a credential")
    else:  # command:local/remote:Command
        for key in ("create", "update", "delete"):
            if CREDENTIAL_ASSIGNMENT.search(str(r.props.get(key) or "")):
                report(f"the {key} script carries a credential; pass it on stdin")
        # A config writer (components/container_service.py): its bundle's files, once known.
        directory = re.search(r"^SOS_DIR=(\S+)$", str(r.props.get("create") or ""), re.MULTILINE)
        stdin = r.props.get("stdin")
        if directory and isinstance(stdin, str) and "write-files.sh" in str(r.props.get("create")):
            for name, mode in _bundle_modes(stdin):
                _secret_file_private(f"{directory.group(1).strip(chr(39))}/{name}", f"{mode:04o}", report)


def _secret_file_private(path: str, mode: str, report: Report) -> None:
    if ("/secrets/" in path or path.endswith(".key")) and mode not in ("0400", "0600"):
        report(f"{path} holds a secret and must be mode 0400")


def _bundle_modes(text: str) -> list[tuple[str, int]]:
    """(path, mode) of each file in a base64 tar bundle (configs/file_bundle.py)."""
    import base64
    import binascii
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(text)), mode="r") as tar:
            return [(m.name, m.mode) for m in tar.getmembers() if m.isfile()]
    except (binascii.Error, tarfile.TarError):
        return []


# --- The cluster placement: ECS, RDS, ElastiCache, the load balancer ---------------------------

def _json(value: Any) -> Any:
    import json

    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return None


def task_definition_hardened(r: Resource, report: Report) -> None:
    containers = _json(r.props.get("containerDefinitions")) or []
    if not isinstance(containers, list) or not containers:
        report("containerDefinitions must be a JSON list of containers")
        return
    for c in containers:
        name = c.get("name", "?")
        if str(c.get("user", "")).split(":")[0] in ("", "0", "root"):
            report(f"{name}: runs as root (set a non-root user)")
        if c.get("readonlyRootFilesystem") is not True:
            report(f"{name}: the root filesystem must be read-only")
        if c.get("privileged"):
            report(f"{name}: must not be privileged")
        if "ALL" not in (((c.get("linuxParameters") or {}).get("capabilities") or {}).get("drop") or []):
            report(f"{name}: must drop ALL capabilities")
        if not (c.get("logConfiguration") or {}).get("logDriver"):
            report(f"{name}: needs a log configuration")
        one_off = (r.props.get("tags") or {}).get("runs") == "one-off"
        if not one_off and not (c.get("healthCheck") or {}).get("command"):
            report(f"{name}: needs a health check (only a one-off task, tagged runs=one-off, has none)")
        for variable in c.get("environment") or []:
            if CREDENTIAL_NAME.search(str(variable.get("name", ""))):
                report(f"{name}: {variable.get('name')} looks like a credential; pass it in `secrets` by reference")


def _docker_hub(image: str) -> bool:
    """Docker's reading of a reference: a first part without a dot, a colon or `localhost` is a
    path on Docker Hub, not a registry host."""
    first, _, rest = image.partition("/")
    return not rest or not (re.search(r"[.:]", first) or first == "localhost") or first in DOCKER_HUB_HOSTS


def task_image_not_anonymous_docker_hub(r: Resource, report: Report) -> None:
    for c in _json(r.props.get("containerDefinitions")) or []:
        image = str(c.get("image", ""))
        if _docker_hub(image) and not (c.get("repositoryCredentials") or {}).get("credentialsParameter"):
            report(f"{c.get('name', '?')}: {image} is pulled from Docker Hub anonymously, through the NAT address "
                   "every task shares (10 pulls an hour): pull it through ECR's pull-through cache")


def service_private_and_rolling(r: Resource, report: Report) -> None:
    network = r.props.get("networkConfiguration") or {}
    if network.get("assignPublicIp"):
        report("tasks must not get public IP addresses")
    breaker = r.props.get("deploymentCircuitBreaker") or {}
    if not (breaker.get("enable") and breaker.get("rollback")):
        report("the deployment circuit breaker must be on, with rollback")
    stop_first = (r.props.get("tags") or {}).get("deploy") == "stop-first"
    if stop_first:
        # The named exception: one task that must never run twice (n8n's main process).
        if r.props.get("desiredCount", 1) != 1 or r.props.get("deploymentMaximumPercent") != 100:
            report("a stop-first service runs exactly one task and never two (deploymentMaximumPercent 100)")
    elif r.props.get("deploymentMinimumHealthyPercent", 100) < 100:
        report("deploymentMinimumHealthyPercent must be 100 (a deploy never lowers capacity); only a single "
               "task tagged deploy=stop-first may stop before its successor starts")


def database_encrypted_private_kept(r: Resource, report: Report) -> None:
    p = r.props
    if p.get("storageEncrypted") is not True:
        report("storage must be encrypted")
    if p.get("publiclyAccessible"):
        report("must not be publicly accessible")
    if p.get("deletionProtection") is not True:
        report("deletion protection must be on")
    if p.get("skipFinalSnapshot") or not p.get("finalSnapshotIdentifier"):
        report("a final snapshot must be taken on delete")
    if int(p.get("backupRetentionPeriod") or 0) < 7:
        report("automated backups (point-in-time recovery) must be kept at least 7 days")
    if p.get("password"):
        report("the master password must not be in the program: use manageMasterUserPassword")
    if r.stack == "production" and not p.get("multiAz"):
        report("production's database must be Multi-AZ")


def cache_encrypted_authenticated(r: Resource, report: Report) -> None:
    p = r.props
    if p.get("atRestEncryptionEnabled") is not True or p.get("transitEncryptionEnabled") is not True:
        report("encryption at rest and in transit must be on")
    if not p.get("authToken") and not p.get("userGroupIds"):
        report("clients must authenticate (an AUTH token or RBAC users)")
    if r.stack == "production" and not (p.get("automaticFailoverEnabled") and p.get("multiAzEnabled")):
        report("production's cache must fail over automatically across zones")


def engine_version_floats(r: Resource, report: Report) -> None:
    """With automatic minor upgrades AWS moves the engine past the program: a pinned minor then
    makes every later `up` ask for a downgrade, which RDS and ElastiCache refuse, and a minor AWS
    retired cannot be created at all. The provider accepts a prefix and ignores the rest."""
    p = r.props
    version = str(p.get("engineVersion") or "")
    if p.get("autoMinorVersionUpgrade", True) is False:
        return
    if r.type == "aws:rds/instance:Instance" and "." in version:
        report(f"engineVersion {version} pins a minor that automatic minor upgrades will move past: "
               f"give the major only ({version.split('.')[0]})")
    if r.type == "aws:elasticache/replicationGroup:ReplicationGroup" and version.count(".") > 1:
        report(f"engineVersion {version} pins a patch that automatic upgrades will move past: give major.minor")


def listener_mutual_tls(r: Resource, report: Report) -> None:
    p = r.props
    if p.get("protocol") != "HTTPS":
        report("only an HTTPS listener: Cloudflare connects over TLS")
    elif (p.get("mutualAuthentication") or {}).get("mode") != "verify":
        report("the listener must verify Cloudflare's client certificate (mutual TLS, mode verify)")


RULES: tuple[Rule, ...] = (
    Rule("s3-public-access-blocked", "S3 buckets block every kind of public access.",
         frozenset({"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"}), public_access_blocked),
    Rule("s3-encrypted", "S3 buckets encrypt at rest by default.",
         frozenset({"aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"}),
         encrypted_at_rest),
    Rule("s3-versioned", "S3 buckets are versioned.",
         frozenset({"aws:s3/bucketVersioning:BucketVersioning"}), versioned),
    Rule("s3-tls-only", "S3 bucket policies deny requests without TLS.",
         frozenset({"aws:s3/bucketPolicy:BucketPolicy"}), tls_only),
    Rule("ec2-imdsv2", "Instances require IMDSv2.", frozenset({"aws:ec2/instance:Instance"}), imdsv2_required),
    Rule("volumes-encrypted", "EBS volumes, root volumes included, are encrypted.",
         frozenset({"aws:ec2/instance:Instance", "aws:ebs/volume:Volume"}), volumes_encrypted),
    Rule("no-ssh-from-anywhere", "SSH is never open to 0.0.0.0/0 or ::/0.",
         frozenset({"aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:ec2/securityGroup:SecurityGroup"}),
         no_ssh_from_anywhere),
    Rule("web-only-from-cloudflare", "Ports 80 and 443 admit only Cloudflare's ranges (or the VPC's own private "
         "network).",
         frozenset({"aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "aws:ec2/securityGroup:SecurityGroup"}),
         web_only_from_cloudflare),
    Rule("container-hardened", "Containers run non-root, read-only, without capabilities, limited, "
         "health-checked, log-rotated and on a pinned image, unless they name an opt-out.",
         frozenset({"docker:index/container:Container"}), container_hardened),
    Rule("image-pinned", "Images are pinned to a version, never latest.",
         frozenset({"docker:index/remoteImage:RemoteImage"}), image_pinned),
    Rule("only-the-edge-publishes", "No container but the edge proxy publishes a port beyond loopback.",
         frozenset({"docker:index/container:Container"}), no_published_ports),
    Rule("stateful-protected-in-production", "Buckets, data volumes and irreplaceable generated secrets are protected in "
         "production.", frozenset(STATEFUL_TYPES | {"docker:index/volume:Volume",
                                                  "random:index/randomPassword:RandomPassword"}),
         protected_in_production),
    Rule("data-containers-protected-in-production", "PostgreSQL and Redis containers are protected in "
         "production: a change that would replace one fails unless the operator allowed it.",
         frozenset({"docker:index/container:Container"}), data_containers_protected),
    Rule("ecs-task-hardened", "ECS containers run non-root, read-only, without capabilities, not privileged, "
         "health-checked and logged, with credentials only as secrets by reference.",
         frozenset({"aws:ecs/taskDefinition:TaskDefinition"}), task_definition_hardened),
    Rule("ecs-image-not-anonymous-docker-hub", "Fargate tasks pull no Docker Hub image anonymously: every task "
         "shares the NAT's address, and Docker Hub admits 10 anonymous pulls an hour per address.",
         frozenset({"aws:ecs/taskDefinition:TaskDefinition"}), task_image_not_anonymous_docker_hub),
    Rule("ecs-service-private-rolling", "ECS services have no public addresses and deploy with 100 % healthy "
         "and the circuit breaker's rollback.", frozenset({"aws:ecs/service:Service"}), service_private_and_rolling),
    Rule("rds-encrypted-private-kept", "RDS is encrypted, private, deletion-protected with a final snapshot, "
         "keeps 7 days of PITR, never holds a password in the program, Multi-AZ in production.",
         frozenset({"aws:rds/instance:Instance"}), database_encrypted_private_kept),
    Rule("elasticache-encrypted-authenticated", "ElastiCache encrypts at rest and in transit, authenticates "
         "clients, and fails over across zones in production.",
         frozenset({"aws:elasticache/replicationGroup:ReplicationGroup"}), cache_encrypted_authenticated),
    Rule("engine-version-floats", "RDS and ElastiCache with automatic minor upgrades pin no more than the "
         "version AWS keeps (RDS: the major; ElastiCache: major.minor).",
         frozenset({"aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup"}),
         engine_version_floats),
    Rule("lb-mutual-tls", "The load balancer listens on HTTPS only and verifies Cloudflare's client certificate.",
         frozenset({"aws:lb/listener:Listener"}), listener_mutual_tls),
    Rule("no-plain-credentials", "Credentials reach containers and commands only as secrets, files or stdin.",
         frozenset({"docker:index/container:Container", "command:local:Command", "command:remote:Command"}),
         no_plain_credentials),
)


def check(resources: Iterable[Resource]) -> list[tuple[str, str, str]]:
    """(rule, resource name, message) for every violation."""
    found: list[tuple[str, str, str]] = []
    for resource in resources:
        for rule in RULES:
            if resource.type in rule.types:
                rule.check(resource, lambda message, rule=rule, resource=resource:
                           found.append((rule.name, resource.name, message)))
    return found
