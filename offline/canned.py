"""Canned provider answers for the offline plan.

Offline there is no provider plugin, so the mock answers in its place. What it answers is
documented here (and in the README) because reviewers read plans made from it:

Invokes
  aws:ec2/getAmi               -> ami-0abcdef1234567890, an Ubuntu 24.04 LTS amd64 image
  aws:index/getAvailabilityZones -> <region>a .. <region>f (use1-az1 .. az6)
  aws:rds/getEngineVersion      -> <major>.10, the default minor
  aws:rds/getOrderableDbInstance -> every zone, but <region>c (use1-az3) for a Graviton class
  aws:index/getCallerIdentity  -> account 123456789012 (moto's default account, too)
  aws:elb/getServiceAccount    -> 127311923021 (ELB's log writer in us-east-1)
  cloudflare:index/getZone     -> zone id 023e105f4ecef8ad9ca31a8372d0c353 for the looked-up name
  cloudflare:index/getIpRanges -> a fixed snapshot of Cloudflare's published ranges (CF_IPV4/6)
  command:local:run            -> empty stdout (nothing is run); `docker context inspect` answers
                                  unix:///var/run/docker.sock, the CLI's default endpoint

Resources
  inputs are echoed back as outputs, plus: an id; RandomPassword `result` made of the requested
  length and character classes (with URL- and shell-special characters when `special` is on,
  so encoding bugs show up); tls keys and certificates in PEM/OpenSSH shape (self-signed valid
  to 2027-11-27T00:00:00Z, Cloudflare Origin CA to "2041-11-23 20:00:00 +0000 UTC"); EIP 203.0.113.10
  (TEST-NET-3); EBS volume ids in AWS's `vol-` + 17 hex form; `sha256:` image ids.
Any other invoke is an error naming its token, so a new data source cannot slip in unanswered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

ACCOUNT_ID = "123456789012"
AMI_ID = "ami-0abcdef1234567890"
AMI_NAME = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261015"
EIP = "203.0.113.10"
ZONE_ID = "023e105f4ecef8ad9ca31a8372d0c353"
ACCESS_KEY_CREATED = "2026-11-27T00:00:00Z"
DOCKER_DEFAULT_HOST = "unix:///var/run/docker.sock"
# AWS resources the program leaves to Pulumi's autonaming and whose name it reads back.
# Cloudflare's ranges: the same snapshot the policy pack admits on 80/443.
from policy.cloudflare_ranges import CF_IPV4, CF_IPV6  # noqa: E402


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def autoname(name: str, *salt: str) -> str:
    """Pulumi's autonaming: `<logical name>-<7 hex>`."""
    return f"{name}-{_digest('autoname', name, *salt)[:7]}"


def mock_password(name: str, length: int = 32, special: bool = True,
                  override_special: str = "") -> str:
    """Deterministic stand-in with the requested shape: every allowed special character first
    (up to half the length), so a truncating or unescaping bug cannot hide them."""
    specials = (override_special or "!#$%&*()-_=+[]{}<>:?") if special else ""
    body = _digest("password", name)
    body = body[:8] + body[8:16].upper() + body[16:]
    text = (specials[: length // 2] + body) * 4
    return text[:length]


def _pem(kind: str, name: str) -> str:
    blob = base64.b64encode(bytes.fromhex(_digest(kind, name)) * 3).decode()
    return f"-----BEGIN {kind}-----\n{blob[:64]}\n{blob[64:]}\n-----END {kind}-----\n"


def _ssh_public(name: str) -> str:
    blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00 "
                            + bytes.fromhex(_digest("ssh", name))).decode()
    return f"ssh-ed25519 {blob}\n"


class CannedMocks(Mocks):
    def __init__(self, stack: str, region: str = "us-east-1") -> None:
        self.stack = stack
        self.region = region

    # ---------------------------------------------------------------- invokes
    def call(self, args: MockCallArgs) -> tuple[dict, list]:
        token = args.token
        if token == "aws:ec2/getAmi:getAmi":
            return {
                "id": AMI_ID, "imageId": AMI_ID, "name": AMI_NAME, "architecture": "x86_64",
                "rootDeviceName": "/dev/sda1", "ownerId": "099720109477",
            }, []
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            # us-east-1's six zones; which name is which ID differs per account.
            names = [f"{self.region}{z}" for z in "abcdef"]
            return {"id": self.region, "names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 7)]}, []
        if token == "aws:rds/getEngineVersion:getEngineVersion":
            # The default minor RDS creates for the major asked (16.10 when this was written).
            return {"id": "postgres", "engine": "postgres", "version": args.args.get("version"),
                    "versionActual": f"{args.args.get('version')}.10", "parameterGroupFamily": "postgres16"}, []
        if token == "aws:rds/getOrderableDbInstance:getOrderableDbInstance":
            # As in us-east-1: the zone whose ID is use1-az3 (here named <region>c) offers no
            # Graviton class (the program must not pick it by its name).
            wanted = args.args.get("instanceClass") or (args.args.get("preferredInstanceClasses") or [""])[0]
            graviton = re.search(r"^db\.[a-z]+\dg\.", wanted) is not None
            zones = [f"{self.region}{z}" for z in "abcdef" if not (graviton and z == "c")]
            return {"id": self.region, "availabilityZones": zones, "engine": "postgres",
                    "instanceClass": wanted, "engineVersion": args.args.get("engineVersion"),
                    "storageType": "gp3"}, []
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"id": ACCOUNT_ID, "accountId": ACCOUNT_ID, "userId": "AIDAMOCKOPERATOR",
                    "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/operator"}, []
        if token == "aws:elb/getServiceAccount:getServiceAccount":
            # Elastic Load Balancing's log-writing account in us-east-1, as AWS documents it.
            return {"id": "127311923021", "arn": "arn:aws:iam::127311923021:root", "region": self.region}, []
        if token == "cloudflare:index/getZone:getZone":
            name = (args.args.get("filter") or {}).get("name", "example.com")
            return {"id": ZONE_ID, "zoneId": ZONE_ID, "name": name,
                    "account": {"id": "mock-account"}}, []
        if token == "cloudflare:index/getIpRanges:getIpRanges":
            return {"id": "ip-ranges", "ipv4Cidrs": CF_IPV4, "ipv6Cidrs": CF_IPV6}, []
        if token == "command:local:run":
            cmd = args.args.get("command", "")
            # The docker CLI's endpoint (components/local_docker_host.py): the default socket.
            stdout = f"{DOCKER_DEFAULT_HOST}\n" if cmd.startswith("docker context inspect") else ""
            return {"stdout": stdout, "stderr": "", "command": cmd}, []
        raise NotImplementedError(f"offline plan has no canned answer for invoke {token}")

    # ---------------------------------------------------------------- resources
    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        t, name, inputs = args.typ, args.name, dict(args.inputs)
        rid = f"{name}-id"
        out: dict[str, Any] = {}
        if t == "random:index/randomPassword:RandomPassword":
            # A new password whenever the keepers change, as the provider replaces it then
            # (none: the value of a stack that never rotated stays what it was).
            keepers = inputs.get("keepers")
            salted = f"{name}/{json.dumps(keepers, sort_keys=True, default=str)}" if keepers else name
            out["result"] = mock_password(
                salted, int(inputs.get("length", 32)), bool(inputs.get("special", True)),
                inputs.get("overrideSpecial", ""),
            )
        elif t == "aws:ecs/taskDefinition:TaskDefinition":
            # Every change registers a new revision: a new ARN, which the service then deploys.
            revision = 1 + int(_digest("revision", name, str(inputs.get("containerDefinitions", "")))[:4], 16)
            family = inputs.get("family", name)
            out.update(revision=revision,
                       arn=f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:task-definition/{family}:{revision}",
                       arnWithoutRevision=f"arn:aws:ecs:{self.region}:{ACCOUNT_ID}:task-definition/{family}")
        elif t == "aws:secretsmanager/secretVersion:SecretVersion":
            # PutSecretValue makes a version (a UUID) per value: a new value, a new id.
            digest = _digest("secret-version", name, str(inputs.get("secretString", "")))
            out["versionId"] = "-".join((digest[:8], digest[8:12], digest[12:16], digest[16:20], digest[20:32]))
            out["versionStages"] = ["AWSCURRENT"]
        elif t == "random:index/randomId:RandomId":
            # A new id whenever the keepers change, as the provider replaces it then.
            keepers = json.dumps(inputs.get("keepers") or {}, sort_keys=True, default=str)
            out["hex"] = _digest("id", name, keepers)[: 2 * int(inputs.get("byteLength", 8))]
        elif t == "tls:index/privateKey:PrivateKey":
            out.update(
                privateKeyPem=_pem("PRIVATE KEY", name),
                privateKeyPemPkcs8=_pem("PRIVATE KEY", name),
                privateKeyOpenssh=_pem("OPENSSH PRIVATE KEY", name),
                publicKeyPem=_pem("PUBLIC KEY", name),
                publicKeyOpenssh=_ssh_public(name),
                publicKeyFingerprintSha256="SHA256:" + _digest("fp", name)[:43],
            )
        elif t in ("tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert"):
            out["certPem"] = _pem("CERTIFICATE", name)
            out["validityEndTime"] = "2027-11-27T00:00:00Z"
        elif t == "cloudflare:index/originCaCertificate:OriginCaCertificate":
            out["certificate"] = _pem("CERTIFICATE", name)
            # Cloudflare's own format for the expiry.
            out["expiresOn"] = "2041-11-23 20:00:00 +0000 UTC"
        elif t == "tls:index/certRequest:CertRequest":
            out["certRequestPem"] = _pem("CERTIFICATE REQUEST", name)
        elif t == "aws:ec2/eip:Eip":
            rid = "eipalloc-" + _digest(name)[:17]
            out.update(publicIp=EIP, allocationId=rid)
        elif t == "aws:ebs/volume:Volume":
            rid = "vol-" + _digest(name)[:17]
            out["arn"] = f"arn:aws:ec2:{self.region}:{ACCOUNT_ID}:volume/{rid}"
        elif t == "aws:ec2/instance:Instance":
            rid = "i-" + _digest(name)[:17]
            out.update(privateIp="10.42.1.10", arn=f"arn:aws:ec2:{self.region}:{ACCOUNT_ID}:instance/{rid}")
        elif t.startswith("aws:ec2/") and t.split(":")[-1] in ("Vpc", "Subnet", "SecurityGroup", "InternetGateway", "RouteTable"):
            prefix = {"Vpc": "vpc", "Subnet": "subnet", "SecurityGroup": "sg",
                      "InternetGateway": "igw", "RouteTable": "rtb"}[t.split(":")[-1]]
            rid = f"{prefix}-" + _digest(name)[:17]
        elif t == "aws:rds/instance:Instance":
            # identifier_prefix + a suffix; the endpoint's shape; the secret RDS keeps the
            # master password in (manage_master_user_password).
            rid = inputs.get("identifier") or f"{inputs.get('identifierPrefix', '')}{_digest('rds', name)[:12]}"
            out.update(identifier=rid, address=f"{rid}.c{_digest('rds-host', name)[:11]}.{self.region}.rds.amazonaws.com",
                       port=5432, arn=f"arn:aws:rds:{self.region}:{ACCOUNT_ID}:db:{rid}",
                       masterUserSecrets=[{"secretArn": f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}:secret:"
                                                        f"rds!db-{_digest('rds-secret', name)[:8]}-AbCdEf",
                                           "secretStatus": "active", "kmsKeyId": ""}])
        elif t == "aws:elasticache/replicationGroup:ReplicationGroup":
            rid = inputs.get("replicationGroupId") or autoname(name)
            out.update(primaryEndpointAddress=f"master.{rid}.{_digest('cache', name)[:6]}.use1.cache.amazonaws.com",
                       arn=f"arn:aws:elasticache:{self.region}:{ACCOUNT_ID}:replicationgroup:{rid}")
        elif t == "aws:s3/bucketObjectv2:BucketObjectv2":
            # Every bucket of the platform is versioned: S3 answers each PUT with a version.
            out.update(versionId=_digest("version", name, str(inputs.get("content", "")))[:32], etag=_digest("etag", name)[:32])
        elif t in ("aws:lb/loadBalancer:LoadBalancer", "aws:lb/targetGroup:TargetGroup"):
            # The ARN's last part, which CloudWatch metrics and request-count scaling name.
            kind = "app" if t.endswith("LoadBalancer") else "targetgroup"
            out["arnSuffix"] = f"{kind}/{name}/{_digest('lb', name)[:16]}"
            out["arn"] = f"arn:aws:elasticloadbalancing:{self.region}:{ACCOUNT_ID}:{'loadbalancer/' if kind == 'app' else ''}{out['arnSuffix']}"
            if kind == "app":
                # Autonamed as pulumi-aws names it, and its public DNS name.
                out["name"] = inputs.get("name") or autoname(name)
                out["dnsName"] = f"{out['name']}-{int(_digest('dns', name)[:8], 16)}.{self.region}.elb.amazonaws.com"
        elif t == "aws:iam/accessKey:AccessKey":
            # An access key's shapes; the date is the plan's "now" for a key created by this run.
            rid = "AKIA" + _digest("key", name)[:16].upper()
            out.update(secret=_digest("secret", name)[:40], createDate=ACCESS_KEY_CREATED, status="Active")
        elif t.startswith("aws:iam/"):
            out["arn"] = f"arn:aws:iam::{ACCOUNT_ID}:{t.split(':')[-1].lower()}/{inputs.get('name', name)}"
            out.setdefault("name", inputs.get("name", name))
        elif t.startswith("aws:s3/"):
            bucket = inputs.get("bucket", name)
            out.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}",
                       bucketRegionalDomainName=f"{bucket}.s3.{self.region}.amazonaws.com")
        elif t == "docker:index/remoteImage:RemoteImage":
            digest = _digest("image", str(inputs.get("name")))
            out.update(imageId=f"sha256:{digest}", repoDigest=f"{inputs.get('name')}@sha256:{digest}")
        elif t == "docker:index/network:Network":
            rid = _digest("net", name)[:24]
        elif t == "docker:index/container:Container":
            rid = _digest("ctr", name)
            if not inputs.get("name"):
                # The provider's autonaming: `<name>-<7 hex>`, anew whenever the container is
                # replaced; here derived from what it runs, so a new image gives a new name.
                out["name"] = autoname(name, str(inputs.get('image')))
        elif t == "command:remote:Command" or t == "command:local:Command":
            out.update(stdout="", stderr="")
        if t == "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup":
            out["name"] = "default"  # adopted, not created: every VPC's default group is named so
        if t.startswith("aws:") and not t.startswith("aws:iam/") and not inputs.get("name") and "name" not in out:
            # pulumi-aws autonames `name` (`<logical name>-<7 hex>`, or after `namePrefix`): a
            # reference to it must resolve, or the SDK leaves the referring input out.
            out["name"] = (inputs["namePrefix"] + _digest("prefix", name)[:26]) if inputs.get("namePrefix") \
                else autoname(name)
        if t == "aws:secretsmanager/secret:Secret":
            # <name prefix><random>-<6 characters>, as Secrets Manager names its ARNs.
            out["arn"] = (f"arn:aws:secretsmanager:{self.region}:{ACCOUNT_ID}:secret:"
                          f"{inputs.get('namePrefix', name)}{_digest('secret-arn', name)[:8]}-{_digest('sfx', name)[:6]}")
        if t.startswith("aws:") and "arn" not in out and not t.startswith("pulumi:providers"):
            out["arn"] = f"arn:aws:{t.split(':')[1].split('/')[0]}:{self.region}:{ACCOUNT_ID}:{name}"
        return rid, {**inputs, **out}
