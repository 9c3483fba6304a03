"""Every internal credential, generated once and kept in the stack's encrypted state."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

# URL- and shell-special characters on purpose: every consumer must encode or quote them, and
# the data-tier tests prove it does. No quotes, backslash, space or backtick: those break
# tools that cannot be fixed from here (e.g. libpq service files).
PASSWORD_SPECIALS = "!#$%&*()-_=+[]{}<>:?@/^~"


@dataclass(frozen=True)
class SecretSpec:
    length: int
    special: bool
    why: str


SPECS: dict[str, SecretSpec] = {
    "postgresSuperuser": SecretSpec(32, True, "administration only; no application uses it"),
    "postgresApp": SecretSpec(32, True, "the API's role, owner of the storiesofsoftware database"),
    "postgresN8n": SecretSpec(32, True, "n8n's role, owner of the n8n database"),
    "postgresMonitoring": SecretSpec(32, True, "read-only role of the PostgreSQL exporter"),
    "redis": SecretSpec(32, True, "Redis requirepass"),
    "jwtAccess": SecretSpec(64, False, "signs API access tokens"),
    "jwtRefresh": SecretSpec(64, False, "signs API refresh tokens"),
    # Losing it makes every credential stored in n8n unreadable: protected in production.
    "n8nEncryptionKey": SecretSpec(48, False, "n8n's N8N_ENCRYPTION_KEY"),
    "grafanaAdmin": SecretSpec(32, True, "Grafana's admin user"),
    # Encrypts every pgBackRest backup before it leaves the host: without it they are noise.
    "backupCipher": SecretSpec(64, False, "pgBackRest repository cipher pass"),
}
LOCAL_ONLY = {
    "minioRoot": SecretSpec(40, False, "MinIO root user's password (dev only; S3 elsewhere)"),
}


@dataclass
class PlatformSecretsArgs:
    with_minio: bool
    protect: bool


class PlatformSecrets(pulumi.ComponentResource):
    """`values[name]` is a secret Output. Protected in production: a regenerated database
    password no longer matches the one the data volume was initialised with."""

    values: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PlatformSecretsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:PlatformSecrets", name, None, opts)
        specs = dict(SPECS)
        if args.with_minio:
            specs.update(LOCAL_ONLY)
        self.values = {}
        for key, spec in specs.items():
            password = random.RandomPassword(
                f"{name}-{key}",
                length=spec.length,
                special=spec.special,
                override_special=PASSWORD_SPECIALS if spec.special else None,
                min_lower=2, min_upper=2, min_numeric=2,
                min_special=2 if spec.special else 0,
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
            )
            # RandomPassword declares `result` secret; saying it again costs nothing and keeps
            # it secret even if a provider upgrade forgot to.
            self.values[key] = pulumi.Output.secret(password.result)
        self.register_outputs({})
