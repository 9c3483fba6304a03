"""Every internal credential, generated once and kept in the stack's encrypted state; replaced
when the stack bumps its generation (`secretGenerations`, docs/security.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_random as random

from configs.secrets import PASSWORD_SPECIALS, SPECS, keepers


@dataclass
class PlatformSecretsArgs:
    with_minio: bool
    protect: bool
    # name -> generation (1 and up); a name not given is at generation 0, its first value.
    generations: Mapping[str, int] = field(default_factory=dict)


class PlatformSecrets(pulumi.ComponentResource):
    """`values[name]` is a secret Output.

    A new generation replaces the password (its `keepers` change); whatever takes it is updated
    after it. Generation 0 has no keepers at all, so a stack that never rotated plans exactly as
    before. In production the secrets whose loss loses data (`irreplaceable`: n8n's key, the
    backup cipher) are protected."""

    values: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: PlatformSecretsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:PlatformSecrets", name, None, opts)
        self.values = {}
        for key, spec in SPECS.items():
            if spec.placements == "local" and not args.with_minio:
                continue
            generation = args.generations.get(key, 0)
            password = random.RandomPassword(
                f"{name}-{key}",
                length=spec.length,
                special=spec.special,
                override_special=PASSWORD_SPECIALS if spec.special else None,
                min_lower=2, min_upper=2, min_numeric=2,
                min_special=2 if spec.special else 0,
                keepers=keepers(generation),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect and spec.irreplaceable),
            )
            # RandomPassword declares `result` secret; saying it again costs nothing and keeps
            # it secret even if a provider upgrade forgot to.
            self.values[key] = pulumi.Output.secret(password.result)
        self.register_outputs({})
