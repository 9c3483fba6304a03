"""n8n: one process on a Docker host; on the cluster, queue mode — a main process (editor,
triggers), webhook processes and workers, sharing executions through Redis (configs/n8n.py)."""

from __future__ import annotations

import pulumi

from configs import n8n as n8n_config
from services.spec import Scratch, ServiceSpec, Wiring, node_http_check
from settings import Settings

NAME = n8n_config.SERVICE
HEALTHCHECK = node_http_check(n8n_config.PORT, "/healthz", start_period="120s")
# n8n's own shutdown ends first; the SIGKILL after this long is the backstop.
STOP_TIMEOUT = n8n_config.GRACEFUL_SHUTDOWN_SECONDS + 15
# Queue mode's processes: name -> its arguments to the image's entrypoint.
QUEUE_PROCESSES = {"n8n": (), "n8n-webhook": ("webhook",), "n8n-worker": ("worker",)}


def processes(cfg: Settings, wiring: Wiring, db_password: pulumi.Input[str],
              encryption_key: pulumi.Input[str]) -> list[ServiceSpec]:
    secrets: dict[str, pulumi.Input[str]] = {
        "DB_POSTGRESDB_PASSWORD": db_password,
        # Losing it makes every stored credential unreadable: it lives in the stack's state
        # (protected in production) and is never regenerated.
        "N8N_ENCRYPTION_KEY": encryption_key,
    }
    environment: dict[str, pulumi.Input[str]] = dict(n8n_config.n8n_env(cfg.origin("n8n"), wiring.postgres_host))
    common = {"image": cfg.images["n8n"], "limits": cfg.limits["n8n"], "user": n8n_config.USER,
              "port": n8n_config.PORT, "health": HEALTHCHECK, "stop_timeout": STOP_TIMEOUT,
              # The image runs `tini -- /docker-entrypoint.sh` (n8n's docker/images/n8n/Dockerfile).
              "own_init": True, "needs": frozenset({"database"}), "family": NAME}
    if wiring.queue_redis_host is None:
        return [ServiceSpec(
            name=NAME, environment=environment, secrets=secrets,
            # Its home (n8n_config.DATA_DIR) is a volume; the start cache is rebuilt each start.
            writable=(Scratch("/tmp", 128, executable=True),
                      Scratch(n8n_config.STATIC_CACHE_DIR, 128, private=True)),
            **common)]  # type: ignore[arg-type]
    if wiring.queue_password is None:
        raise ValueError("n8n's queue needs the Redis password")
    environment |= n8n_config.queue_env(wiring.queue_redis_host)
    secrets["QUEUE_BULL_REDIS_PASSWORD"] = wiring.queue_password
    common["needs"] = frozenset({"database", "cache"})
    return [ServiceSpec(
        name=name, environment=environment, secrets=secrets, command=args,
        singleton=name == NAME, discoverable=name != "n8n-worker",
        # N8N_USER_FOLDER's settings file and the editor's static files, which `n8n start`
        # writes under it at every start (about 77 MB at 1.123).
        writable=(Scratch("/tmp", n8n_config.CLUSTER_TMP_MB),),
        **common) for name, args in QUEUE_PROCESSES.items()]  # type: ignore[arg-type]
