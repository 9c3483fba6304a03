"""Every secret the platform generates, what it is for, and how each is rotated.

One table, read by the component that generates them (components/platform_secrets.py), by the
settings (which names `secretGenerations` takes, on which placements) and by the docs' rotation
table (docs/security.md, checked against this one by tests/test_secret_rotation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# URL- and shell-special characters on purpose: every consumer must encode or quote them, and
# the data-tier tests prove it does. No quotes, backslash, space or backtick: those break
# tools that cannot be fixed from here (e.g. libpq service files).
PASSWORD_SPECIALS = "!#$%&*()-_=+[]{}<>:?@/^~"

# How a secret is rotated (docs/security.md, "Rotating secrets").
BY_GENERATION = "generation"  # bump `secretGenerations.<name>`, then `pulumi up`
# A procedure: a new value alone would lose data (or the host), so no setting makes one; the
# runbook replaces the resource for one run (`pulumi up --replace`) in its place.
BY_RUNBOOK = "runbook"


@dataclass(frozen=True)
class SecretSpec:
    length: int
    special: bool
    why: str
    rotation: str = BY_GENERATION
    # Kept even from `pulumi destroy` of the secret itself (protect): a lost value loses data
    # that no `pulumi up` can bring back.
    irreplaceable: bool = False
    # Where it exists: "all" placements, "local" (dev's engine only) or "host" (the EC2 host).
    placements: str = "all"


SPECS: dict[str, SecretSpec] = {
    "postgresSuperuser": SecretSpec(32, True, "administration only; no application uses it"),
    "postgresApp": SecretSpec(32, True, "the API's role, owner of the storiesofsoftware database"),
    "postgresN8n": SecretSpec(32, True, "n8n's role, owner of the n8n database"),
    "postgresMonitoring": SecretSpec(32, True, "read-only role of the PostgreSQL exporter"),
    "redis": SecretSpec(32, True, "Redis requirepass"),
    "jwtAccess": SecretSpec(64, False, "signs API access tokens"),
    "jwtRefresh": SecretSpec(64, False, "signs API refresh tokens"),
    # Every credential stored in n8n is encrypted with it: a new key without re-encrypting them
    # leaves them unreadable.
    "n8nEncryptionKey": SecretSpec(48, False, "n8n's N8N_ENCRYPTION_KEY", rotation=BY_RUNBOOK, irreplaceable=True),
    "grafanaAdmin": SecretSpec(32, True, "Grafana's admin user"),
    # Encrypts every pgBackRest backup before it leaves the host: without it they are noise, and
    # a repository's cipher cannot change (a new one needs a new repository).
    "backupCipher": SecretSpec(64, False, "pgBackRest repository cipher pass", rotation=BY_RUNBOOK,
                               irreplaceable=True),
    "minioRoot": SecretSpec(40, False, "MinIO root user's password (dev only; S3 elsewhere)", placements="local"),
}

# The EC2 host's SSH keys (pulumi-tls, components/docker_host.py): both reach the instance in
# its user data, so a new one is a new instance (a runbook, with the host's downtime).
HOST_KEYS: dict[str, str] = {
    "sshClient": "the key the deployment's remote commands log in to the Docker host with",
    "sshHost": "the Docker host's SSH host key, pinned by the deployment",
}


def rotatable(placement: str) -> dict[str, str]:
    """Name -> how it rotates, of every secret a stack with `placement` has."""
    out = {name: spec.rotation for name, spec in SPECS.items()
           if spec.placements == "all" or spec.placements == placement}
    if placement == "host":
        out.update(dict.fromkeys(HOST_KEYS, BY_RUNBOOK))
    return out


def by_generation(placement: str) -> list[str]:
    """What `secretGenerations` takes on a stack with `placement`."""
    return [name for name, how in rotatable(placement).items() if how == BY_GENERATION]


def keepers(generation: int) -> dict[str, str] | None:
    """A generated secret's `keepers` for its generation: none at 0, so a stack that never
    rotated plans exactly as before; any other change of it replaces the secret."""
    return {"generation": str(generation)} if generation else None
