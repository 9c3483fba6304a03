"""The one-off step that makes a managed database ready for the platform (the cluster's RDS):
the roles, databases and extensions the Docker PostgreSQL gets from its first-boot SQL. The
roles' passwords travel as SCRAM verifiers, never in clear (configs/scram.py)."""

from __future__ import annotations

from pathlib import Path

from configs import postgres as pg
from services.spec import Scratch, StepSpec
from settings import Settings

NAME = "database-bootstrap"
# Its secrets' owner: the roles' verifiers, kept apart from any service's.
ROLES_OWNER = "database-roles"
# The managed database's scripts (this step's, and the restore runbook's).
SCRIPTS = Path(__file__).resolve().parent.parent / "configs" / "cluster_scripts"
# Variables that carry the roles' SCRAM verifiers (configs/postgres.py) -> the generated password's key.
VERIFIER_VARIABLES = {"SOS_APP_VERIFIER": "app", "SOS_N8N_VERIFIER": "n8n", "SOS_MONITORING_VERIFIER": "monitoring"}


def bootstrap(cfg: Settings, scratch_mb: int) -> StepSpec:
    """`scratch_mb`: the restore runbook fetches a dump into /tmp (docs/runbook.md), as much as
    the task's memory allows."""
    return StepSpec(
        name=NAME, image=cfg.images["postgres"], limits=cfg.limits["postgres"], user=pg.IMAGE_USER,
        args=("sh", "-c", (SCRIPTS / f"{NAME}.sh").read_text()),
        environment={"PGPORT": str(pg.PORT), "PGSSLMODE": "require", "PGCONNECT_TIMEOUT": "10",
                     "SOS_INIT_SQL": pg.init_sql(managed=True)},
        owner=ROLES_OWNER, secrets=tuple(VERIFIER_VARIABLES),
        writable=(Scratch("/tmp", scratch_mb),))
