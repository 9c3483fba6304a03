"""ECS Fargate (`placement: cluster`, issue 19): the same services as on the host, over two or
three availability zones, on RDS PostgreSQL and ElastiCache Redis.

Cloudflare -> the load balancer (Cloudflare's ranges only, its client certificate verified) ->
the edge (nginx, the host's configuration with TLS ended at the load balancer) -> the API,
the frontend and n8n (main and webhook processes), found by name through Cloud Map. n8n runs in
queue mode: workers take executions from Redis. One-off tasks bootstrap the database (roles,
databases, extensions: the host's init SQL) and migrate it before the services that need it
update; a failed one fails `pulumi up`. Secrets reach tasks by reference from Secrets Manager;
the API reaches S3 through its task role, so no static key exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pulumi
import pulumi_aws as aws
from pulumi_command import local as local_command

from components.cluster_alarms import ClusterAlarms, ClusterAlarmsArgs
from components.cluster_entry import ClusterEntry, ClusterEntryArgs
from components.cluster_network import ClusterNetwork, ClusterNetworkArgs
from components.cluster_service import PROGRAM_PYTHON, ClusterService, Scaling
from components.database_vault import DatabaseVault, DatabaseVaultArgs
from components.image_cache import ImageCache, ImageCacheArgs
from components.managed_cache import ManagedCache, ManagedCacheArgs
from components.managed_database import ENGINE_VERSION as DATABASE_ENGINE_VERSION
from components.managed_database import ManagedDatabase, ManagedDatabaseArgs
from components.platform_secrets import PlatformSecrets
from components.task_groups import TaskGroups
from configs import ecs, edge_release, scram
from configs import nginx as nginx_config
from configs import postgres as pg
from configs import redis as redis_config
from placements.aws_front import AwsFront
from placements.base import Running, check_steps, needs_ready
from placements.cluster_tasks import TaskMaker
from services import database as database_service
from services.spec import Scratch, ServiceSpec, StepSpec, Wiring
from settings import CLUSTER_IMAGES, Settings

# The VPC's resolver (Route 53 Resolver), which answers for Cloud Map's private namespace.
VPC_RESOLVER = "169.254.169.253"
# Requests per minute a task of each serving service is scaled to (target tracking; CPU at 60 %
# scales too, whichever asks for more). Every request the load balancer takes counts for the API
# and the frontend alike: the load balancer cannot tell whose it is, so each is sized for all.
EDGE_REQUESTS_PER_TASK = 3000
REQUESTS_PER_TASK = {"api": 1200, "frontend": 1200}
# Each autoscaled service's bounds in the `cluster.tasks` setting; the others run one task.
TASK_BOUNDS = {"edge": "edge", "api": "api", "frontend": "frontend", "n8n-worker": "n8nWorker"}
# The edge's two caches on the cluster (static assets, responses), in its /tmp tmpfs: memory.
EDGE_CACHE_MB = (64, 128)
# What one response may spool to the edge's /tmp for a slow client: its tmpfs is memory.
EDGE_PROXY_TEMP_MB = 8
# The account's service-linked roles ECS and its autoscaling use.
SERVICE_LINKED_ROLES = ("ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com")
# The generated password behind each role's verifier (services/database.py).
ROLE_PASSWORDS = {"app": "postgresApp", "n8n": "postgresN8n", "monitoring": "postgresMonitoring"}


class ClusterPlacement:
    grafana_url = None

    def __init__(self, cfg: Settings, secrets: PlatformSecrets) -> None:
        sizes = cfg.cluster
        if sizes is None:
            raise ValueError("placement cluster needs the cluster settings")
        self.cfg, self.sizes, self.secrets = cfg, sizes, secrets
        front = AwsFront(cfg, static_keys=False)
        prefix, region, production = cfg.name_prefix, front.aws.region, cfg.is_production
        on_aws = self.on_aws = front.on_aws
        storage = self.storage = front.storage
        hosts = nginx_config.edge_hosts(cfg.domain, n8n=cfg.features.n8n, grafana=False)
        # Where RDS offers the database class, for the major it runs (the default minor RDS
        # creates) and as it runs (gp3, encrypted, Multi-AZ in production): the subnets' zones are
        # among those. The preferred class (not `instance_class`) takes the first of several
        # matching options, where the provider otherwise refuses more than one.
        on_aws_invoke = pulumi.InvokeOutputOptions(provider=front.aws_provider)
        engine = aws.rds.get_engine_version_output(engine="postgres", version=DATABASE_ENGINE_VERSION,
                                                   default_only=True, opts=on_aws_invoke)
        orderable = aws.rds.get_orderable_db_instance_output(
            engine="postgres", engine_version=engine.version_actual,
            preferred_instance_classes=[sizes.database_class], storage_type="gp3", supports_storage_encryption=True,
            supports_multi_az=True if production else None, vpc=True, opts=on_aws_invoke)
        network_args = self.network_args = ClusterNetworkArgs(
            name_prefix=prefix, region=region, zones=3 if production else 2, nat_per_zone=production,
            offered_zones=orderable.availability_zones,
            flow_log_destination=storage.flow_log_destination, flow_log_ready=[storage.policies["logs"]])
        network = ClusterNetwork("cluster", network_args, opts=on_aws)
        private_subnets = [s.id for s in network.private_subnets]

        # Cloudflare first: the load balancer serves its Origin CA certificate and trusts its
        # origin-pull CA; the DNS records then point at the load balancer.
        self.edge_dns = edge_dns = front.dns(list(hosts.values()), None)
        self.entry = entry = ClusterEntry("entry", ClusterEntryArgs(
            name_prefix=prefix, vpc_id=network.vpc.id, vpc_cidr=network_args.cidr,
            public_subnet_ids=[s.id for s in network.public_subnets], ingress_cidrs=front.cloudflare_ranges.all,
            certificate_pem=edge_dns.origin_cert_pem, private_key_pem=edge_dns.origin_key_pem,
            client_ca_pem=edge_dns.client_ca_pem, trust_store_bucket=storage.log_bucket.bucket,
            target_port=nginx_config.HTTP_PORT, health_path=nginx_config.HEALTH_PATH,
            health_port=nginx_config.HEALTH_PORT, protect=production,
            access_log_bucket=storage.log_bucket.bucket, access_log_ready=[storage.policies["logs"]],
        ), opts=on_aws)
        edge_dns.point_at(entry.load_balancer.dns_name, is_hostname=True)

        self.groups = groups = TaskGroups("tasks", network.vpc.id, network_args.cidr, entry.security_group.id,
                                          prefix, opts=on_aws)
        self.database = database = ManagedDatabase("postgres", ManagedDatabaseArgs(
            name_prefix=prefix, instance_class=sizes.database_class,
            allocated_storage_gb=sizes.database_storage_gb, multi_az=production,
            backup_retention_days=cfg.backup_retention_days, subnet_ids=private_subnets, vpc_id=network.vpc.id,
            client_security_group_ids=[groups.apps.id], protect=production,
            log_retention_days=front.aws.log_retention_days), opts=on_aws)
        self.cache = cache = ManagedCache("redis", ManagedCacheArgs(
            name_prefix=prefix, node_type=sizes.cache_node_type, failover=production,
            snapshot_retention_days=7 if production else 1, subnet_ids=private_subnets, vpc_id=network.vpc.id,
            client_security_group_ids=[groups.apps.id], protect=production,
            # n8n's queue shares it: executions must never be evicted.
            maxmemory_policy=redis_config.QUEUE_SAFE_POLICY if cfg.features.n8n else redis_config.MAXMEMORY_POLICY,
            token_generation=cfg.secret_generations.get("redis", 0)),
            opts=on_aws)
        db_host = database.instance.address
        redis_host = cache.group.primary_endpoint_address

        pw = secrets.values
        self.wiring = Wiring(
            storage=storage,
            database_url=pulumi.Output.all(pw["postgresApp"], db_host).apply(
                lambda v: pg.database_url(v[0], v[1]) + "?sslmode=require"),
            redis_url=pulumi.Output.all(cache.auth_token, redis_host).apply(
                lambda v: redis_config.redis_url(v[0], v[1], tls=True)),
            postgres_host=db_host,
            # Names through Cloud Map; n8n in queue mode on the shared Redis.
            domain_suffix=f".{prefix}.internal", queue_redis_host=redis_host if cfg.features.n8n else None,
            queue_password=cache.auth_token)

        # A fresh account's first CreateCluster or CreateService can fail on the service-linked
        # role ECS should have made (deploy/service_roles.py); the roles are the account's, never
        # deleted.
        service_roles = local_command.Command(
            "service-linked-roles", create=f"{PROGRAM_PYTHON} -m deploy.service_roles --region {region} "
                                           f"{' '.join(SERVICE_LINKED_ROLES)}")
        self.cluster = cluster = aws.ecs.Cluster("cluster-ecs", name=f"{prefix}", settings=[
            aws.ecs.ClusterSettingArgs(name="containerInsights", value="enhanced")],
            opts=pulumi.ResourceOptions.merge(on_aws, pulumi.ResourceOptions(depends_on=[service_roles])))
        # Every image through ECR's pull-through cache where it can be (configs/images.py).
        image_cache = ImageCache("images", ImageCacheArgs(
            namespace=prefix, region=region, images=sorted({cfg.images[key] for key in CLUSTER_IMAGES}),
            registry=cfg.registry, recovery_window_days=30 if production else 7), opts=on_aws)
        self.tasks = TaskMaker(
            cfg=cfg, aws_cfg=front.aws, cluster=cluster, vpc_id=network.vpc.id, subnet_ids=private_subnets,
            security_group_ids=[groups.apps.id], image_cache=image_cache,
            # No task starts before its way out (image pull, logs, secrets) and its rules exist.
            started_after=[*network.ready, *groups.ready], opts=on_aws)

        # --- the database: roles and databases (what the Docker PostgreSQL does at first boot) --
        roles = self.tasks.vault(database_service.ROLES_OWNER, {
            variable: pw[ROLE_PASSWORDS[key]].apply(lambda p, role=pg.ROLES[key]: scram.scram_verifier(p, role))
            for variable, key in database_service.VERIFIER_VARIABLES.items()})
        master = database.master_secret_arn
        self.bootstrap = self.tasks.step(
            database_service.bootstrap(cfg, ecs.scratch_budget_mb(cfg.limits["postgres"].cpus,
                                                                  cfg.limits["postgres"].memory_mb)),
            roles, database.ready,
            # The managed database's own master credentials (RDS keeps them in Secrets Manager).
            extra_secrets={"PGUSER": master.apply(lambda a: f"{a}:username::"),
                           "PGPASSWORD": master.apply(lambda a: f"{a}:password::")},
            extra_secret_arns=[master], extra_environment={"PGHOST": db_host})
        self.services: dict[str, ClusterService] = {}

    def _scaling(self, name: str, **extra: object) -> Scaling:
        bounds = self.sizes.tasks.get(TASK_BOUNDS.get(name, ""))
        return Scaling(bounds.minimum, bounds.maximum, **extra) if bounds else Scaling(1, 1)  # type: ignore[arg-type]

    def run_service(self, spec: ServiceSpec, steps: Sequence[StepSpec] = (),
                    after: Sequence[Running] = ()) -> Running:
        check_steps(spec, steps)
        owner = self.tasks.vault_of(spec)
        needs = needs_ready(spec, {"database": [self.bootstrap.run], "cache": self.cache.ready, "storage": []})
        if steps:
            # The steps run one after the other once the database is bootstrapped; the service
            # waits for the last of them and for its other stores.
            previous: pulumi.Resource = self.bootstrap.run
            for step in steps:
                previous = self.tasks.step(step, owner, [previous]).run
            needs = [previous, *(r for r in needs if r is not self.bootstrap.run)]
        scaling = self._scaling(spec.name)
        if spec.name in REQUESTS_PER_TASK:
            scaling = self._scaling(spec.name, requests_per_task=REQUESTS_PER_TASK[spec.name],
                                    edge_target=(self.entry.load_balancer.arn_suffix,
                                                 self.entry.target_group.arn_suffix))
        discovery = self.tasks.discovered(spec.name) if spec.discoverable else None
        # S3 through the task role: no static key exists on the cluster.
        storage_policy = {"task_policy": self.storage.api_policy} if "storage" in spec.needs else {}
        service = self.tasks.service(
            spec, owner, scaling, [*needs, *(r for a in after for r in a.ready)],
            discovery_arn=discovery.arn if discovery else None, stop_first=spec.singleton,
            **storage_policy)
        self.services[spec.name] = service
        return Running([f"{self.wiring.host(spec.name)}:{spec.port}"] if discovery else [], [service.service])

    def run_edge(self, spec: ServiceSpec, api: Running, frontend: Running,
                 n8n: Mapping[str, Running]) -> Running:
        cfg = self.cfg
        conf = nginx_config.render(nginx_config.EdgeConfig(
            domain=cfg.domain,
            n8n_server=n8n["n8n"].by_name() if n8n else None,
            n8n_webhook_server=n8n["n8n-webhook"].by_name() if n8n else None,
            grafana_server=None, admin_cidrs=list(cfg.admin_cidrs),
            # Only the load balancer reaches the edge's tasks, and only Cloudflare reaches it.
            real_ip_from=[self.network_args.cidr], client_ca=False,
            api_servers=[api.by_name()], frontend_servers=[frontend.by_name()],
            resolver=VPC_RESOLVER, behind_load_balancer=True, cache_dir=edge_release.CLUSTER_CACHE_DIR,
            cache_max_mb=EDGE_CACHE_MB, proxy_temp_file_max=f"{EDGE_PROXY_TEMP_MB}m"))
        placed = replace(
            spec,
            # The release travels in the task definition; the entrypoint unpacks it, starts nginx.
            environment={**spec.environment, edge_release.CLUSTER_RELEASE_VARIABLE: edge_release.cluster_release(conf)},
            command=("sh", "-c", edge_release.cluster_entrypoint()),
            # The release, pid, both caches (nginx trims them only after the fact), request bodies
            # (up to 10 MiB each) and responses spooled for slow clients (up to EDGE_PROXY_TEMP_MB
            # each): all in the task's memory.
            writable=(Scratch("/tmp", 256 + sum(EDGE_CACHE_MB)),))
        edge = self.tasks.service(
            placed, None, self._scaling("edge", requests_per_target=EDGE_REQUESTS_PER_TASK,
                                        load_balancer_label=self.entry.request_label),
            [self.entry.listener], target_group_arn=self.entry.target_group.arn,
            security_group_ids=[self.groups.edge.id])
        self.services["edge"] = edge
        return Running([], [edge.service])

    def observe(self) -> None:
        cfg, sizes, production = self.cfg, self.sizes, self.cfg.is_production
        database, cache, entry = self.database, self.cache, self.entry
        nodes = 2 if production else 1
        minimums = {name: sizes.tasks[key].minimum for name, key in TASK_BOUNDS.items()}
        alarms = ClusterAlarms("alarms", ClusterAlarmsArgs(
            name_prefix=cfg.name_prefix, load_balancer_suffix=entry.load_balancer.arn_suffix,
            target_group_suffix=entry.target_group.arn_suffix, cluster_name=self.cluster.name,
            services={name: (svc.service.name, minimums.get(name, 1)) for name, svc in self.services.items()},
            database_id=database.instance.identifier, database_class=sizes.database_class,
            storage_gb=sizes.database_storage_gb,
            # ElastiCache names a replication group's nodes <group id>-001, -002, ...
            cache_nodes=[cache.group.id.apply(lambda g, i=i: f"{g}-{i + 1:03d}") for i in range(nodes)],
            certificate_arn=entry.certificate.arn), opts=self.on_aws)
        DatabaseVault("postgres-vault", DatabaseVaultArgs(
            name_prefix=cfg.name_prefix, database_arn=database.instance.arn,
            retention_days=cfg.backup_retention_days, compliance=production, topic_arn=alarms.topic.arn,
            protect=production), opts=self.on_aws)

    def outputs(self) -> Mapping[str, pulumi.Input[str]]:
        return {"cloudflareZoneId": self.edge_dns.zone_id, "loadBalancerName": self.entry.load_balancer.name,
                "clusterName": self.cluster.name,
                # Reachable from the VPC (and what is peered with it), unlike a Docker host's.
                "databaseEndpoint": self.database.instance.address.apply(lambda a: f"{a}:{pg.PORT}")}
