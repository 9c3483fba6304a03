"""The Fastify API: a migration task, then N replicas behind the edge proxy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import pulumi

from components.container_service import (
    ContainerService,
    ContainerServiceArgs,
    Placement,
    node_http_check,
    scratch,
)
from components.one_shot_task import OneShotTask, OneShotTaskArgs
from components.postgres import USER as POSTGRES_USER
from configs.postgres import migration_sql
from settings import Limits

SERVICE = "api"
PORT = 3001
# The image's non-root user (the seed's Dockerfile: adduser --uid 1001 api, group nodejs 1001).
USER = "1001:1001"
# Optional external credentials: config key -> variable the API reads.
EXTERNAL_ENV = {
    "sendgridApiKey": "SENDGRID_API_KEY",
    "stripeSecretKey": "STRIPE_SECRET_KEY",
    "stripeWebhookSecret": "STRIPE_WEBHOOK_SECRET",
    "mediumApiToken": "MEDIUM_API_TOKEN",
    "devtoApiKey": "DEVTO_API_KEY",
}


# Every placement checks it the same way (the cluster's task definitions too).
HEALTHCHECK = node_http_check(PORT, "/health", start_period="60s")

@dataclass
class ApiArgs:
    placement: Placement
    image: str
    migration_image: str  # has psql: the PostgreSQL image
    limits: Limits
    migration_limits: Limits
    replicas: int
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    site_url: str
    database_url: pulumi.Output[str]
    redis_url: pulumi.Output[str]
    jwt_access_secret: pulumi.Output[str]
    jwt_refresh_secret: pulumi.Output[str]
    s3_endpoint: str
    s3_region: str
    s3_force_path_style: bool
    content_bucket: pulumi.Input[str]
    images_bucket: pulumi.Input[str]
    s3_access_key_id: pulumi.Input[str]
    s3_secret_access_key: pulumi.Output[str]
    external_secrets: Mapping[str, pulumi.Output[str] | None] = field(default_factory=dict)
    rollout_batch: int = 1
    drain_seconds: int = 30
    depends_on: Sequence[pulumi.Resource] = ()


class Api(pulumi.ComponentResource):
    service: ContainerService
    indexes: OneShotTask
    migration: OneShotTask
    # What dependents wait for (every replica healthy).
    ready: list[pulumi.Resource]
    # The edge routes to the exact containers (`upstreams`, new names on each deploy); Prometheus
    # scrapes the stable per-replica aliases, so its configuration does not change on a deploy.
    upstreams: list[pulumi.Output[str]]
    scrape_targets: list[str]

    def __init__(self, name: str, args: ApiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Api", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        sql = migration_sql()
        # Runs on every new API image (its trigger is the pulled image id) and fails the
        # deployment when either step fails; replicas are created only after it succeeded.
        self.migration = OneShotTask(f"{name}-migrate", OneShotTaskArgs(
            task="api-migrate",
            image=args.image,
            limits=args.migration_limits,
            network=args.data_network,
            user=USER,
            steps=[["npx", "--no-install", "prisma", "migrate", "deploy"]],
            secret_env={"DATABASE_URL": args.database_url},
            env={"NODE_ENV": "production"},
            commands=args.placement.commands,
            depends_on=list(args.depends_on),
        ), opts=child)
        self.indexes = OneShotTask(f"{name}-indexes", OneShotTaskArgs(
            task="api-migration-sql",
            image=args.migration_image,
            limits=args.migration_limits,
            network=args.data_network,
            user=POSTGRES_USER,
            entrypoint="sh",
            # The data tier's migration-time SQL, applied by psql after Prisma's migrations.
            steps=[["-c", 'printf "%s" "$SOS_MIGRATION_SQL" | psql --no-psqlrc -v ON_ERROR_STOP=1 '
                          '--dbname "$DATABASE_URL" -f -']],
            env={"SOS_MIGRATION_SQL": sql},
            secret_env={"DATABASE_URL": args.database_url},
            commands=args.placement.commands,
            triggers=[self.migration.run.id],
            depends_on=[self.migration.run],
        ), opts=child)

        env: dict[str, pulumi.Input[str]] = {
            "NODE_ENV": "production",
            "PORT": str(PORT),
            "HOST": "0.0.0.0",
            "SITE_URL": args.site_url,
            "S3_ENDPOINT": args.s3_endpoint,
            "AWS_REGION": args.s3_region,
            "S3_FORCE_PATH_STYLE": "true" if args.s3_force_path_style else "false",
            "S3_BUCKET_CONTENT": args.content_bucket,
            "S3_BUCKET_IMAGES": args.images_bucket,
        }
        secret_env: dict[str, pulumi.Input[str]] = {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "JWT_ACCESS_SECRET": args.jwt_access_secret,
            "JWT_REFRESH_SECRET": args.jwt_refresh_secret,
            "AWS_ACCESS_KEY_ID": args.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": args.s3_secret_access_key,
        }
        for key, variable in EXTERNAL_ENV.items():
            value = args.external_secrets.get(key)
            if value is not None:
                secret_env[variable] = value
        self.service = ContainerService(f"{name}-svc", replace(
            ContainerServiceArgs.of(SERVICE, args, [args.edge_network, args.data_network], USER),
            env=env,
            secret_env=secret_env,
            tmpfs={"/tmp": scratch(64)},
            healthcheck=HEALTHCHECK,
            replicas=args.replicas,
            # Start-first deploys; an old replica gets SIGTERM and this long to drain.
            rolling=True,
            rollout_batch=args.rollout_batch,
            stop_timeout=args.drain_seconds,
            depends_on=[self.indexes.run],
        ), opts=child)
        self.ready = list(self.service.containers)
        self.upstreams = [name.apply(lambda n: f"{n}:{PORT}") for name in self.service.names]
        self.scrape_targets = [f"{alias}:{PORT}" for alias in self.service.aliases]
        self.register_outputs({})
