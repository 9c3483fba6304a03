"""The Fastify API, and the two steps each new image runs first: Prisma's migrations, then the
data tier's migration-time SQL (configs/postgres.py)."""

from __future__ import annotations

import pulumi

from configs import postgres as pg
from services.spec import Scratch, ServiceSpec, StepSpec, Wiring, node_http_check
from settings import Settings

NAME = "api"
PORT = 3001
# The image's non-root user (the seed's Dockerfile: adduser --uid 1001 api, group nodejs 1001).
USER = "1001:1001"
HEALTHCHECK = node_http_check(PORT, "/health", start_period="60s")
# Optional external credentials: config key -> variable the API reads.
EXTERNAL_ENV = {
    "sendgridApiKey": "SENDGRID_API_KEY",
    "stripeSecretKey": "STRIPE_SECRET_KEY",
    "stripeWebhookSecret": "STRIPE_WEBHOOK_SECRET",
    "mediumApiToken": "MEDIUM_API_TOKEN",
    "devtoApiKey": "DEVTO_API_KEY",
}


def service(cfg: Settings, wiring: Wiring, jwt_access: pulumi.Input[str],
            jwt_refresh: pulumi.Input[str]) -> ServiceSpec:
    storage = wiring.storage
    secrets: dict[str, pulumi.Input[str]] = {
        "DATABASE_URL": wiring.database_url,
        "REDIS_URL": wiring.redis_url,
        "JWT_ACCESS_SECRET": jwt_access,
        "JWT_REFRESH_SECRET": jwt_refresh,
        **{variable: cfg.external_secrets[key] for key, variable in EXTERNAL_ENV.items()
           if cfg.external_secrets.get(key) is not None},
    }
    # Static keys where the placement has them; on the cluster the task role reaches S3.
    if storage.access_key_id is not None:
        secrets["AWS_ACCESS_KEY_ID"] = storage.access_key_id
        if storage.secret_access_key is not None:
            secrets["AWS_SECRET_ACCESS_KEY"] = storage.secret_access_key
    return ServiceSpec(
        name=NAME, image=cfg.images["api"], limits=cfg.limits["api"], user=USER, port=PORT, health=HEALTHCHECK,
        environment={
            "NODE_ENV": "production",
            "PORT": str(PORT),
            "HOST": "0.0.0.0",
            "SITE_URL": cfg.origin(),
            "S3_ENDPOINT": storage.endpoint,
            "AWS_REGION": storage.region,
            "S3_FORCE_PATH_STYLE": "true" if storage.force_path_style else "false",
            "S3_BUCKET_CONTENT": storage.buckets["content"],
            "S3_BUCKET_IMAGES": storage.buckets["images"],
        },
        secrets=secrets,
        writable=(Scratch("/tmp", 64),),
        # A replica that is replaced gets SIGTERM and this long to drain.
        stop_timeout=cfg.drain_seconds,
        needs=frozenset({"database", "cache", "storage"}),
    )


def migrate(cfg: Settings) -> StepSpec:
    return StepSpec(
        name="api-migrate", image=cfg.images["api"], limits=cfg.limits["api"], user=USER,
        args=("npx", "--no-install", "prisma", "migrate", "deploy"),
        environment={"NODE_ENV": "production"}, owner=NAME, secrets=("DATABASE_URL",))


def indexes(cfg: Settings) -> StepSpec:
    """After Prisma's migrations, with psql from the PostgreSQL image."""
    return StepSpec(
        name="api-indexes", image=cfg.images["postgres"], limits=cfg.limits["api"], user=pg.IMAGE_USER,
        entrypoint="sh",
        args=("-c", 'printf "%s" "$SOS_MIGRATION_SQL" | psql --no-psqlrc -v ON_ERROR_STOP=1 --dbname "$DATABASE_URL" -f -'),
        environment={"SOS_MIGRATION_SQL": pg.migration_sql()}, owner=NAME, secrets=("DATABASE_URL",))
