"""n8n's settings, for the container on a host and the tasks on the cluster (main, webhook and
worker processes in queue mode)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from configs.postgres import N8N_DATABASE, N8N_ROLE
from configs.postgres import PORT as PG_PORT
from configs.redis import PORT as REDIS_PORT

SERVICE = "n8n"
PORT = 5678
GRACEFUL_SHUTDOWN_SECONDS = 30
USER = "1000:1000"  # the image's `node` user
# On a Docker host n8n's home is the image's /home/node (no N8N_USER_FOLDER; the cluster puts
# both below under /tmp/n8n, see queue_env). Its user folder (settings file, event log, crash
# journal) is kept on a volume.
DATA_DIR = "/home/node/.n8n"
# Where `n8n start` writes the editor's static files and node types at every start (n8n-core's
# InstanceSettings: `<home>/.cache/n8n/public`; start.js generateStaticAssets and
# frontend.service.js writeStaticJSON, about 77 MB at 1.123). Under a read-only root it must be
# writable, or n8n exits with "ENOENT: mkdir '/home/node/.cache'" (found on a real engine,
# tests/test_dev_up.py); too small, and a cut-off types/nodes.json leaves an editor without
# nodes while /healthz stays green. Rebuilt at each start: scratch space, not data.
STATIC_CACHE_DIR = "/home/node/.cache"
# The cluster's /tmp: N8N_USER_FOLDER below it holds the settings file and, as n8n's userHome,
# the same static files under .cache.
CLUSTER_TMP_MB = 256


def n8n_env(origin: str, postgres_host: Any) -> dict[str, Any]:
    """Plain settings, for the editor at `origin` (`https://host[:port]`). None of the variables
    n8n 1.0 removed (N8N_BASIC_AUTH_*, N8N_JWT_AUTH_*, N8N_USER_MANAGEMENT_DISABLED): the owner
    account is created in the editor on first visit."""
    return {
        "N8N_HOST": urlsplit(origin).hostname or origin,
        "N8N_PORT": str(PORT),
        "N8N_PROTOCOL": "https",
        "N8N_EDITOR_BASE_URL": f"{origin}/",
        "WEBHOOK_URL": f"{origin}/",
        # One proxy (nginx) sits in front; n8n then trusts its X-Forwarded-For.
        "N8N_PROXY_HOPS": "1",
        "N8N_SECURE_COOKIE": "true",
        "GENERIC_TIMEZONE": "UTC",
        "TZ": "UTC",
        "DB_TYPE": "postgresdb",
        "DB_POSTGRESDB_HOST": postgres_host,
        "DB_POSTGRESDB_PORT": str(PG_PORT),
        "DB_POSTGRESDB_DATABASE": N8N_DATABASE,
        "DB_POSTGRESDB_USER": N8N_ROLE,
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_RUNNERS_ENABLED": "true",
        # Workflows must not read the container's environment: it holds the database password
        # and the encryption key (n8n 1.123 still defaults to allowing it, and warns).
        "N8N_BLOCK_ENV_ACCESS_IN_NODE": "true",
        "N8N_GIT_NODE_DISABLE_BARE_REPOS": "true",
        # The editor would fetch banners and templates from api.n8n.io, a third party the edge's
        # CSP does not admit; off, so the policy stays 'self' (docs/architecture.md: how to turn them on).
        "N8N_DYNAMIC_BANNERS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_METRICS": "true",
        # A deploy stops the one main process: running executions get this long to finish.
        "N8N_GRACEFUL_SHUTDOWN_TIMEOUT": str(GRACEFUL_SHUTDOWN_SECONDS),
    }


def queue_env(redis_host: Any) -> dict[str, Any]:
    """Queue mode (the cluster): the main process takes the editor and triggers and puts each
    execution on a Redis queue (ElastiCache, TLS, AUTH token given as a secret); webhook
    processes take the public webhooks; workers run the executions, manual ones included."""
    return {
        "EXECUTIONS_MODE": "queue",
        "QUEUE_BULL_REDIS_HOST": redis_host,
        "QUEUE_BULL_REDIS_PORT": str(REDIS_PORT),
        "QUEUE_BULL_REDIS_TLS": "true",
        "OFFLOAD_MANUAL_EXECUTIONS_TO_WORKERS": "true",
        # A worker's /healthz on PORT, for its health check.
        "QUEUE_HEALTH_CHECK_ACTIVE": "true",
        "QUEUE_HEALTH_CHECK_PORT": str(PORT),
        # RDS requires TLS (rds.force_ssl). The image has no RDS CA bundle, so the channel is
        # encrypted without verifying the server's name (inside the VPC; see docs/security.md).
        "DB_POSTGRESDB_SSL_ENABLED": "true",
        "DB_POSTGRESDB_SSL_REJECT_UNAUTHORIZED": "false",
        # The read-only root: n8n's user folder (its settings file) in the task's /tmp.
        "N8N_USER_FOLDER": "/tmp/n8n",
        # A community package installed from the editor would land in the main task's /tmp only
        # (gone at its next start, never on the workers that run it; a native addon cannot even
        # load from the noexec tmpfs): custom nodes go into a derived image instead.
        "N8N_COMMUNITY_PACKAGES_ENABLED": "false",
    }
