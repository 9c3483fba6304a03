"""The platform on ECS Fargate (`placement: cluster`, issue 19): the same services as on the
host, over two or three availability zones, on RDS PostgreSQL and ElastiCache Redis.

Cloudflare -> the load balancer (Cloudflare's ranges only, its client certificate verified) ->
the edge (nginx, the host's configuration with TLS ended at the load balancer) -> the API,
the frontend and n8n (main and webhook processes), found by name through Cloud Map. n8n runs in
queue mode: workers take executions from Redis. One-off tasks bootstrap the database (roles,
databases, extensions: the host's init SQL) and migrate it before the services that need it
update; a failed one fails `pulumi up`. Secrets reach tasks by reference from Secrets Manager;
the API reaches S3 through its task role, so no static key exists.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pulumi
import pulumi_aws as aws
import pulumi_cloudflare as cloudflare
from pulumi_command import local as local_command

from components.cloudflare_edge import CloudflareEdge, CloudflareEdgeArgs, ip_ranges
from components.cluster_alarms import ClusterAlarms, ClusterAlarmsArgs
from components.cluster_entry import ClusterEntry, ClusterEntryArgs
from components.cluster_network import ClusterNetwork, ClusterNetworkArgs
from components.cluster_service import (
    PROGRAM_PYTHON,
    ClusterService,
    ClusterServiceArgs,
    ClusterTask,
    ClusterTaskArgs,
    Scaling,
)
from components.database_vault import DatabaseVault, DatabaseVaultArgs
from components.image_cache import ImageCache, ImageCacheArgs
from components.managed_cache import ManagedCache, ManagedCacheArgs
from components.managed_database import ENGINE_VERSION as DATABASE_ENGINE_VERSION
from components.managed_database import ManagedDatabase, ManagedDatabaseArgs
from components.object_storage import ObjectStorage, ObjectStorageArgs
from components.platform_secrets import PlatformSecrets, PlatformSecretsArgs
from components.task_groups import TaskGroups
from configs import ecs, edge_release
from configs import nginx as nginx_config
from configs import postgres as pg
from configs import redis as redis_config
from platforms import outputs
from services import api as api_service
from services import database as database_service
from services import edge as edge_service
from services import frontend as frontend_service
from services import n8n as n8n_service
from services.spec import Scratch, ServiceSpec, StepSpec, Wiring, seconds
from settings import CLUSTER_IMAGES, Settings

# The VPC's resolver (Route 53 Resolver), which answers for Cloud Map's private namespace.
VPC_RESOLVER = "169.254.169.253"
# Seconds a discovered address is cached: the edge's resolver re-asks as often (`valid=10s`).
DISCOVERY_TTL = 10
# Requests per minute a task of each serving service is scaled to (target tracking; CPU at 60 %
# scales too, whichever asks for more). Every request the load balancer takes counts for the API
# and the frontend alike: the load balancer cannot tell whose it is, so each is sized for all.
EDGE_REQUESTS_PER_TASK = 3000
API_REQUESTS_PER_TASK = 1200
FRONTEND_REQUESTS_PER_TASK = 1200
# The edge's two caches on the cluster (static assets, responses), in its /tmp tmpfs: memory.
EDGE_CACHE_MB = (64, 128)
# What one response may spool to the edge's /tmp for a slow client: its tmpfs is memory.
EDGE_PROXY_TEMP_MB = 8
# The account's service-linked roles ECS and its autoscaling use.
SERVICE_LINKED_ROLES = ("ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com")
# The generated password behind each role's verifier (services/database.py).
ROLE_PASSWORDS = {"app": "postgresApp", "n8n": "postgresN8n", "monitoring": "postgresMonitoring"}


def secret_json(values: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(values.items())))


def task_spec(spec: ServiceSpec | StepSpec, stack: str, region: str) -> tuple[ecs.TaskSpec, dict[str, pulumi.Input[str]]]:
    """A service's or a step's spec (services/) as an ECS task: the task definition's part, and
    the variables known only at deploy time, which ClusterService/ClusterTask add to it."""
    plain = {k: v for k, v in spec.environment.items() if isinstance(v, str)}
    later = {k: v for k, v in spec.environment.items() if not isinstance(v, str)}
    common = {"name": spec.name, "image": spec.image, "cpus": spec.limits.cpus, "memory_mb": spec.limits.memory_mb,
              "user": spec.user, "log_group": f"/sos/{stack}/{spec.name}", "region": region, "environment": plain,
              "command": list(spec.command)}
    writable = tuple(ecs.Scratch(w.path, w.size_mb) for w in spec.writable)
    if isinstance(spec, StepSpec):
        return ecs.TaskSpec(port=None, health_command=(), **common, **({"writable": writable} if writable else {})), later
    return ecs.TaskSpec(port=spec.port, health_command=list(spec.health.test),
                        health_start_seconds=seconds(spec.health.start_period), stop_timeout=spec.stop_timeout,
                        writable=writable, **common), later


def build(cfg: Settings) -> None:
    sizes = cfg.cluster
    if sizes is None:
        raise ValueError("placement cluster needs the cluster settings")
    prefix = cfg.name_prefix
    region = cfg.aws_region
    production = cfg.is_production
    aws_provider = aws.Provider("aws", region=region, default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.labels))
    on_aws = pulumi.ResourceOptions(providers={"aws": aws_provider})
    # The API token comes from CLOUDFLARE_API_TOKEN in the environment, never from state.
    cloudflare_provider = cloudflare.Provider("cloudflare")
    cloudflare_ranges = ip_ranges(cloudflare_provider)
    hosts = nginx_config.edge_hosts(cfg.domain, n8n=cfg.features.n8n, grafana=False)
    site_url, api_url, n8n_url = cfg.origin(), cfg.origin("api"), cfg.origin("n8n")

    # Every secret the host placement generates, kept: a switch from the host must not delete
    # them (backupCipher still opens the host's pgBackRest repository in the backups bucket).
    secrets = PlatformSecrets("secrets", PlatformSecretsArgs(with_minio=False, protect=production))
    storage = ObjectStorage("storage", ObjectStorageArgs(
        name_prefix=prefix, region=region,
        site_origins=[site_url, cfg.origin("www")],
        noncurrent_days=cfg.noncurrent_version_days, protect=production,
        backup_retention_days=cfg.backup_retention_days,
        backup_lock_mode="COMPLIANCE" if production else None,
        log_retention_days=cfg.log_retention_days, static_keys=False, load_balancer_logs=True, today=cfg.today,
    ), opts=on_aws)
    # Where RDS offers the database class, for the major it runs (the default minor RDS creates)
    # and as it runs (gp3, encrypted, Multi-AZ in production): the subnets' zones are among those.
    # The preferred class (not `instance_class`) takes the first of several matching options,
    # where the provider otherwise refuses more than one.
    on_aws_invoke = pulumi.InvokeOutputOptions(provider=aws_provider)
    engine = aws.rds.get_engine_version_output(engine="postgres", version=DATABASE_ENGINE_VERSION, default_only=True,
                                               opts=on_aws_invoke)
    orderable = aws.rds.get_orderable_db_instance_output(
        engine="postgres", engine_version=engine.version_actual, preferred_instance_classes=[sizes.database_class],
        storage_type="gp3", supports_storage_encryption=True, supports_multi_az=True if production else None,
        vpc=True, opts=on_aws_invoke)
    network_args = ClusterNetworkArgs(
        name_prefix=prefix, region=region, zones=3 if production else 2, nat_per_zone=production,
        offered_zones=orderable.availability_zones,
        flow_log_destination=storage.flow_log_destination, flow_log_ready=[storage.policies["logs"]])
    network = ClusterNetwork("cluster", network_args, opts=on_aws)
    private_subnets = [s.id for s in network.private_subnets]

    # Cloudflare first: the load balancer serves its Origin CA certificate and trusts its
    # origin-pull CA; the DNS records then point at the load balancer.
    edge_dns = CloudflareEdge("cdn", CloudflareEdgeArgs(
        zone=cfg.cloudflare_zone, domain=cfg.domain, hostnames=list(hosts.values()), origin=None,
        manage_zone=cfg.manages_zone), opts=pulumi.ResourceOptions(providers={"cloudflare": cloudflare_provider}))
    entry = ClusterEntry("entry", ClusterEntryArgs(
        name_prefix=prefix, vpc_id=network.vpc.id, vpc_cidr=network_args.cidr,
        public_subnet_ids=[s.id for s in network.public_subnets], ingress_cidrs=cloudflare_ranges.all,
        certificate_pem=edge_dns.origin_cert_pem, private_key_pem=edge_dns.origin_key_pem,
        client_ca_pem=edge_dns.client_ca_pem, trust_store_bucket=storage.log_bucket.bucket,
        target_port=nginx_config.HTTP_PORT, health_path=nginx_config.HEALTH_PATH,
        health_port=nginx_config.HEALTH_PORT, protect=production,
        access_log_bucket=storage.log_bucket.bucket, access_log_ready=[storage.policies["logs"]],
    ), opts=on_aws)
    edge_dns.point_at(entry.load_balancer.dns_name, is_hostname=True)

    groups = TaskGroups("tasks", network.vpc.id, network_args.cidr, entry.security_group.id, prefix, opts=on_aws)
    database = ManagedDatabase("postgres", ManagedDatabaseArgs(
        name_prefix=prefix, instance_class=sizes.database_class, allocated_storage_gb=sizes.database_storage_gb,
        multi_az=production, backup_retention_days=cfg.backup_retention_days, subnet_ids=private_subnets,
        vpc_id=network.vpc.id, client_security_group_ids=[groups.apps.id], protect=production,
        log_retention_days=cfg.log_retention_days), opts=on_aws)
    cache = ManagedCache("redis", ManagedCacheArgs(
        name_prefix=prefix, node_type=sizes.cache_node_type, failover=production,
        snapshot_retention_days=7 if production else 1, subnet_ids=private_subnets, vpc_id=network.vpc.id,
        client_security_group_ids=[groups.apps.id], protect=production,
        # n8n's queue shares it: executions must never be evicted.
        maxmemory_policy=redis_config.QUEUE_SAFE_POLICY if cfg.features.n8n else redis_config.MAXMEMORY_POLICY),
        opts=on_aws)
    db_host = database.instance.address
    # No task starts before its way out (image pull, logs, secrets) and its rules exist.
    started_after: list[pulumi.Resource] = [*network.ready, *groups.ready]
    redis_host = cache.group.primary_endpoint_address

    def vault(name: str, values: Mapping[str, pulumi.Input[str]]) -> aws.secretsmanager.Secret:
        """One Secrets Manager secret per consumer, a JSON object of its variables."""
        secret = aws.secretsmanager.Secret(
            f"{name}-secrets", name_prefix=f"{prefix}/{name}-", description=f"{prefix} {name}: its secrets",
            recovery_window_in_days=30 if production else 7, opts=on_aws)
        aws.secretsmanager.SecretVersion(
            f"{name}-secrets-value", secret_id=secret.id,
            secret_string=pulumi.Output.secret(pulumi.Output.all(**dict(values)).apply(secret_json)), opts=on_aws)
        return secret

    def keys_of(secret: aws.secretsmanager.Secret, names: Sequence[str]) -> dict[str, pulumi.Output[str]]:
        return {n: secret.arn.apply(lambda arn, n=n: f"{arn}:{n}::") for n in names}

    pw = secrets.values
    database_url = pulumi.Output.all(pw["postgresApp"], db_host).apply(
        lambda v: pg.database_url(v[0], v[1]) + "?sslmode=require")
    redis_url = pulumi.Output.all(cache.auth_token, redis_host).apply(
        lambda v: redis_config.redis_url(v[0], v[1], tls=True))
    # Names through Cloud Map; n8n in queue mode on the shared Redis.
    wiring = Wiring(storage=storage, database_url=database_url, redis_url=redis_url, postgres_host=db_host,
                    domain_suffix=f".{prefix}.internal",
                    queue_redis_host=redis_host if cfg.features.n8n else None)
    api_spec = api_service.service(cfg, wiring, pw["jwtAccess"], pw["jwtRefresh"])
    api_secret = vault("api", api_spec.secrets)
    roles_secret = vault(database_service.ROLES_OWNER, {
        variable: pw[ROLE_PASSWORDS[key]].apply(lambda p, role=pg.ROLES[key]: pg.scram_verifier(p, role))
        for variable, key in database_service.VERIFIER_VARIABLES.items()})

    # A fresh account's first CreateCluster or CreateService can fail on the service-linked role
    # ECS should have made (tools/service_roles.py); the roles are the account's, never deleted.
    service_roles = local_command.Command(
        "service-linked-roles", create=f"{PROGRAM_PYTHON} -m tools.service_roles --region {region} "
                                       f"{' '.join(SERVICE_LINKED_ROLES)}")
    cluster = aws.ecs.Cluster("cluster-ecs", name=f"{prefix}", settings=[aws.ecs.ClusterSettingArgs(
        name="containerInsights", value="enhanced")],
        opts=pulumi.ResourceOptions.merge(on_aws, pulumi.ResourceOptions(depends_on=[service_roles])))
    namespace = aws.servicediscovery.PrivateDnsNamespace(
        "discovery", name=f"{prefix}.internal", vpc=network.vpc.id,
        description=f"{prefix}: the services' names inside the VPC", opts=on_aws)

    def discovered(name: str) -> tuple[aws.servicediscovery.Service, str]:
        service = aws.servicediscovery.Service(
            f"{name}-discovery", name=name,
            dns_config=aws.servicediscovery.ServiceDnsConfigArgs(
                namespace_id=namespace.id, routing_policy="MULTIVALUE",
                dns_records=[aws.servicediscovery.ServiceDnsConfigDnsRecordArgs(type="A", ttl=DISCOVERY_TTL)]),
            opts=on_aws)
        return service, f"{name}.{prefix}.internal"

    # Every image through ECR's pull-through cache where it can be (configs/images.py).
    image_cache = ImageCache("images", ImageCacheArgs(
        namespace=prefix, region=region, images=sorted({cfg.images[key] for key in CLUSTER_IMAGES}),
        registry=cfg.registry, recovery_window_days=30 if production else 7), opts=on_aws)
    common = {"name_prefix": prefix, "cluster_arn": cluster.arn, "subnet_ids": private_subnets,
              "log_retention_days": cfg.log_retention_days, "image_cache": image_cache}
    in_apps = {"security_group_ids": [groups.apps.id]}
    stack = cfg.stack

    def step(spec: StepSpec, owner: aws.secretsmanager.Secret, depends_on: Sequence[pulumi.Resource],
             **extra: object) -> ClusterTask:
        """A one-off step (services/), its secrets the named keys of its owner's vault."""
        task, later = task_spec(spec, stack, region)
        extra_secrets = dict(extra.pop("secrets", {}))  # type: ignore[call-overload]
        return ClusterTask(spec.name, ClusterTaskArgs(
            spec=task, region=region, secrets={**extra_secrets, **keys_of(owner, list(spec.secrets))},
            secret_arns=[*extra.pop("secret_arns", []), owner.arn],  # type: ignore[misc]
            environment_inputs={**later, **extra.pop("environment_inputs", {})},  # type: ignore[dict-item]
            depends_on=[*depends_on, *started_after], **in_apps, **common, **extra), opts=on_aws)  # type: ignore[arg-type]

    def run(spec: ServiceSpec, owner: aws.secretsmanager.Secret | None, scaling: Scaling,
            depends_on: Sequence[pulumi.Resource], **extra: object) -> ClusterService:
        """A service (services/) as an ECS service; its secrets by reference to its owner's vault."""
        task, later = task_spec(spec, stack, region)
        by_reference = {"secrets": keys_of(owner, sorted(spec.secrets)), "secret_arns": [owner.arn]} if owner else {}
        placed = {**in_apps, **extra}
        return ClusterService(spec.name, ClusterServiceArgs(
            spec=task, environment_inputs=later, cluster_name=cluster.name, scaling=scaling,
            depends_on=[*depends_on, *started_after], **by_reference, **placed, **common), opts=on_aws)  # type: ignore[arg-type]

    # --- the database: roles and databases, then the API's migrations -----------------------
    master = database.master_secret_arn
    bootstrap = step(
        database_service.bootstrap(cfg, ecs.scratch_budget_mb(cfg.limits["postgres"].cpus,
                                                              cfg.limits["postgres"].memory_mb)),
        roles_secret, database.ready,
        # The managed database's own master credentials (RDS keeps them in Secrets Manager).
        secrets={"PGUSER": master.apply(lambda a: f"{a}:username::"),
                 "PGPASSWORD": master.apply(lambda a: f"{a}:password::")},
        secret_arns=[master], environment_inputs={"PGHOST": db_host})
    migrate = step(api_service.migrate(cfg), api_secret, [bootstrap.run])
    indexes = step(api_service.indexes(cfg), api_secret, [migrate.run])

    # --- the services ----------------------------------------------------------------------
    tasks = sizes.tasks
    edge_target = (entry.load_balancer.arn_suffix, entry.target_group.arn_suffix)
    api_discovery, api_name = discovered("api")
    api = run(api_spec, api_secret,
              Scaling(tasks["api"].minimum, tasks["api"].maximum, requests_per_task=API_REQUESTS_PER_TASK,
                      edge_target=edge_target),
              [indexes.run, *cache.ready],
              # S3 through the task role: no static key exists on the cluster.
              task_policy=storage.api_policy, discovery_arn=api_discovery.arn)
    frontend_discovery, frontend_name = discovered("frontend")
    frontend = run(frontend_service.service(cfg, wiring), None,
                   Scaling(tasks["frontend"].minimum, tasks["frontend"].maximum,
                           requests_per_task=FRONTEND_REQUESTS_PER_TASK, edge_target=edge_target),
                   [api.service], discovery_arn=frontend_discovery.arn)

    n8n_servers: tuple[str, str] | None = None
    watched: dict[str, ClusterService] = {}
    if cfg.features.n8n:
        # Queue mode: one main (editor, triggers), webhook processes, autoscaled workers.
        processes = n8n_service.processes(cfg, wiring, pw["postgresN8n"], pw["n8nEncryptionKey"], cache.auth_token)
        n8n_secret = vault("n8n", processes[0].secrets)
        bounds = {"n8n-worker": (tasks["n8nWorker"].minimum, tasks["n8nWorker"].maximum)}
        names: list[str] = []
        for process in processes:
            registry, name = discovered(process.name) if process.name != "n8n-worker" else (None, "")
            names.append(name)
            watched[process.name] = run(
                process, n8n_secret, Scaling(*bounds.get(process.name, (1, 1))), [bootstrap.run, *cache.ready],
                discovery_arn=registry.arn if registry else None,
                # Two main processes would fire every schedule twice (n8n's multi-main is licensed).
                stop_first=process.name == "n8n")
        n8n_servers = (f"{names[0]}:{processes[0].port}", f"{names[1]}:{processes[1].port}")

    edge_conf = nginx_config.render(nginx_config.EdgeConfig(
        domain=cfg.domain, n8n_server=n8n_servers[0] if n8n_servers else None,
        n8n_webhook_server=n8n_servers[1] if n8n_servers else None,
        grafana_server=None, admin_cidrs=list(cfg.admin_cidrs),
        # Only the load balancer reaches the edge's tasks, and only Cloudflare reaches it.
        real_ip_from=[network_args.cidr], client_ca=False,
        api_servers=[f"{api_name}:{api_service.PORT}"],
        frontend_servers=[f"{frontend_name}:{frontend_service.PORT}"],
        resolver=VPC_RESOLVER, behind_load_balancer=True, cache_dir=edge_release.CLUSTER_CACHE_DIR,
        cache_max_mb=EDGE_CACHE_MB, proxy_temp_file_max=f"{EDGE_PROXY_TEMP_MB}m"))
    edge_spec = edge_service.service(cfg)
    edge = run(replace(
        edge_spec,
        # The release travels in the task definition; the entrypoint unpacks it and starts nginx.
        environment={**edge_spec.environment,
                     edge_release.CLUSTER_RELEASE_VARIABLE: edge_release.cluster_release(edge_conf)},
        command=("sh", "-c", edge_release.cluster_entrypoint()),
        # The release, pid, both caches (nginx trims them only after the fact), request bodies
        # (up to 10 MiB each) and responses spooled for slow clients (up to EDGE_PROXY_TEMP_MB
        # each): all in the task's memory.
        writable=(Scratch("/tmp", 256 + sum(EDGE_CACHE_MB)),)), None,
        Scaling(tasks["edge"].minimum, tasks["edge"].maximum, requests_per_target=EDGE_REQUESTS_PER_TASK,
                load_balancer_label=entry.request_label),
        [entry.listener], target_group_arn=entry.target_group.arn, security_group_ids=[groups.edge.id])

    watched = {"edge": edge, "api": api, "frontend": frontend, **watched}
    minimums = {"edge": tasks["edge"].minimum, "api": tasks["api"].minimum, "frontend": tasks["frontend"].minimum,
                "n8n-worker": tasks["n8nWorker"].minimum}
    nodes = 2 if production else 1
    alarms = ClusterAlarms("alarms", ClusterAlarmsArgs(
        name_prefix=prefix, load_balancer_suffix=entry.load_balancer.arn_suffix,
        target_group_suffix=entry.target_group.arn_suffix, cluster_name=cluster.name,
        services={name: (svc.service.name, minimums.get(name, 1)) for name, svc in watched.items()},
        database_id=database.instance.identifier, database_class=sizes.database_class,
        storage_gb=sizes.database_storage_gb,
        # ElastiCache names a replication group's nodes <group id>-001, -002, ...
        cache_nodes=[cache.group.id.apply(lambda g, i=i: f"{g}-{i + 1:03d}") for i in range(nodes)],
        certificate_arn=entry.certificate.arn), opts=on_aws)
    DatabaseVault("postgres-vault", DatabaseVaultArgs(
        name_prefix=prefix, database_arn=database.instance.arn, retention_days=cfg.backup_retention_days,
        compliance=production, topic_arn=alarms.topic.arn, protect=production), opts=on_aws)

    outputs.export_contract(outputs.Contract(
        site_url=site_url, api_url=api_url, n8n_url=n8n_url, grafana_url=None,
        buckets=storage.buckets, s3_endpoint=storage.endpoint, s3_region=storage.region,
        database_url=database_url, redis_url=redis_url,
        extra={"cloudflareZoneId": edge_dns.zone_id, "loadBalancerName": entry.load_balancer.name,
               "clusterName": cluster.name}))
