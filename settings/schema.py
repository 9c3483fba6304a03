"""The schema: one row per key, with its parser, its default per stack (raw, config form) and
its documentation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from settings.defaults import CLOUD_LIMITS, DEFAULT_IMAGES, DEV_LIMITS, LIMITED_SERVICES, SERVICES
from settings.parsers import (
    ServiceMap,
    int_between,
    parse_bool,
    parse_cidr_list,
    parse_cluster,
    parse_docker_host,
    parse_domain,
    parse_edge_ports,
    parse_edge_subnet,
    parse_features,
    parse_generations,
    parse_image,
    parse_instance_type,
    parse_limits,
    parse_placement,
    parse_region,
    parse_registry,
)

# External credentials: optional, and only ever read as config secrets.
EXTERNAL_SECRETS = (
    "sendgridApiKey",
    "stripeSecretKey",
    "stripeWebhookSecret",
    "mediumApiToken",
    "devtoApiKey",
    "registryToken",
)


def _cluster_defaults(production: bool) -> dict[str, Any]:
    def bounds(minimum: int, maximum: int) -> dict[str, int]:
        return {"min": minimum, "max": maximum}

    if production:
        return {"databaseClass": "db.t4g.medium", "databaseStorageGb": 50, "cacheNodeType": "cache.t4g.small",
                "tasks": {"edge": bounds(2, 6), "api": bounds(2, 10), "frontend": bounds(2, 8),
                          "n8nWorker": bounds(1, 4)}}
    return {"databaseClass": "db.t4g.micro", "databaseStorageGb": 20, "cacheNodeType": "cache.t4g.micro",
            "tasks": {"edge": bounds(1, 2), "api": bounds(1, 2), "frontend": bounds(1, 2), "n8nWorker": bounds(1, 2)}}


@dataclass(frozen=True)
class Key:
    name: str
    parse: Callable[[Any], Any] | ServiceMap
    defaults: Mapping[str, Any]
    doc: str


def _per_stack(dev: Any, staging: Any, production: Any) -> Mapping[str, Any]:
    return MappingProxyType({"dev": dev, "staging": staging, "production": production})


def _all(value: Any) -> Mapping[str, Any]:
    return _per_stack(value, value, value)


KEYS: tuple[Key, ...] = (
    Key("domain", parse_domain,
        _per_stack("localhost", "staging.storiesofsoftware.com", "storiesofsoftware.com"),
        "Apex host name of the site; api., www., n8n. and grafana. hang below it."),
    Key("cloudflareZone", parse_domain, _per_stack(None, "storiesofsoftware.com", "storiesofsoftware.com"),
        "Cloudflare zone holding `domain`. The stack whose domain is the zone apex also manages "
        "the zone-wide TLS settings and cache rule."),
    Key("awsRegion", parse_region, _per_stack(None, "us-east-1", "us-east-1"),
        "AWS region of the Docker host and buckets."),
    Key("instanceType", parse_instance_type, _per_stack(None, "t3.medium", "t3.large"),
        "EC2 instance type of the Docker host."),
    Key("rootVolumeGb", int_between(8, 1024), _per_stack(None, 20, 30),
        "Size of the host's encrypted root volume (OS and images)."),
    Key("dataVolumeGb", int_between(10, 16384), _per_stack(None, 50, 100),
        "Size of the encrypted EBS volume that holds every Docker volume."),
    Key("apiReplicas", int_between(1, 20), _per_stack(1, 2, 3),
        "API containers behind the edge proxy (production needs at least 2)."),
    Key("frontendReplicas", int_between(1, 20), _per_stack(1, 2, 2),
        "Next.js containers behind the edge proxy."),
    Key("images", ServiceMap(parse_image, SERVICES), _all(DEFAULT_IMAGES),
        "Image per service, each pinned to a version tag (an @sha256 digest may follow). "
        "A stack sets only the services it changes, e.g. `images.api`."),
    Key("limits", ServiceMap(parse_limits, LIMITED_SERVICES), _per_stack(DEV_LIMITS, CLOUD_LIMITS, CLOUD_LIMITS),
        "Memory (`512m`, `1Gi`), CPUs and PIDs per service; a stack sets only what it changes."),
    Key("adminCidrs", parse_cidr_list, _per_stack(["127.0.0.1/32"], [], []),
        "Addresses allowed to SSH to the host and to reach the n8n editor and Grafana. "
        "Required on staging and production; 0.0.0.0/0 is refused."),
    Key("backupRetentionDays", int_between(1, 3650), _per_stack(7, 14, 35),
        "How long backups are kept."),
    Key("noncurrentVersionDays", int_between(1, 3650), _per_stack(None, 14, 35),
        "How long an overwritten or deleted object in the content and images buckets stays "
        "recoverable (S3 versioning); the backups bucket follows backupRetentionDays."),
    Key("snapshotRetentionDays", int_between(1, 1000), _per_stack(None, 7, 14),
        "How many daily EBS snapshots of the data volume are kept."),
    Key("metricsRetentionDays", int_between(1, 3650), _per_stack(7, 15, 30),
        "How long Prometheus keeps samples."),
    Key("logRetentionDays", int_between(1, 3650), _per_stack(None, 90, 365),
        "How long the log bucket keeps the S3 access logs of the other buckets and the VPC's "
        "flow logs (then a week as noncurrent versions)."),
    Key("features", parse_features, _all({"n8n": True, "monitoring": True, "appMetrics": True}),
        "Switches for optional parts of the platform."),
    Key("dockerHost", parse_docker_host, _per_stack("", None, None),
        "dev only: Docker engine URL; empty means the docker CLI's endpoint (DOCKER_HOST, else its "
        "current context), used by the provider and the CLI alike."),
    Key("edgeSubnet", parse_edge_subnet, _per_stack("10.213.0.0/24", None, None),
        "dev only: subnet of the edge network. A browser on the host reaches the published port "
        "through Docker's proxy and arrives from this network's gateway, which dev's n8n and "
        "Grafana admit. `pulumi preview` refuses a block that another Docker network or a route "
        "of this machine (a VPN, the home network) already covers."),
    Key("edgePorts", parse_edge_ports, _per_stack({"http": 80, "https": 443}, None, None),
        "dev only: the ports the edge publishes on 127.0.0.1. Move them (8080/8443) when another "
        "program holds 80/443 or a rootless engine may not bind ports under 1024; the site's "
        "URLs then carry the port. `pulumi preview` names whatever holds them."),
    Key("rolloutBatch", int_between(1, 20), _all(1),
        "New API or frontend replicas a deploy starts at a time; the edge switches to the new "
        "replicas once all are healthy, then the old ones drain. The host needs room for both."),
    Key("drainSeconds", int_between(1, 600), _all(30),
        "How long an old API or frontend replica has after SIGTERM to finish its requests "
        "before it is killed (see Deploying a new version in the README)."),
    Key("allowDataReplacement", parse_bool, _all(False),
        "production: PostgreSQL and Redis containers are protected, so a change that would "
        "replace one fails `pulumi up`; set true for the one deploy that means to."),
    Key("accessKeyRotationDays", int_between(2, 90), _per_stack(None, 90, 90),
        "Days between two new access keys of the same slot (the API's and the backup writer's "
        "keys, two slots each, half a period apart): the first `pulumi up` on or after the day "
        "replaces it. 90 at most (AWS FSBP IAM.3); an alert fires when a key is older."),
    Key("placement", parse_placement, _per_stack(None, "host", "host"),
        "Where the platform runs: `host` (one EC2 Docker host) or `cluster` (ECS Fargate over two "
        "or three zones, RDS PostgreSQL, ElastiCache Redis; docs/runbook.md: switching)."),
    Key("cluster", parse_cluster, _per_stack(None, _cluster_defaults(False), _cluster_defaults(True)),
        "placement cluster only: the RDS instance class (`databaseClass`) and storage "
        "(`databaseStorageGb`), the ElastiCache node type (`cacheNodeType`), and per autoscaled "
        "service (`tasks.edge`, `.api`, `.frontend`, `.n8nWorker`) its `{min, max}` tasks. "
        "A stack sets only what it changes."),
    Key("secretGenerations", parse_generations, _all({}),
        "`{name: generation}`: a secret whose generation goes up gets a new value on the next "
        "`pulumi up`, and whatever uses it moves to it (docs/security.md, Rotating secrets: what "
        "restarts). Lowering or removing one is a rotation too, to a new value. `n8nEncryptionKey`, "
        "`backupCipher` and the SSH keys rotate by their procedures instead."),
    Key("registry", parse_registry, _all({}),
        "Private registry `{server, username}`; its token is the secret `registryToken`."),
)
KEYS_BY_NAME = {k.name: k for k in KEYS}
