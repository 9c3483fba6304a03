"""Where the platform runs. Each placement is one object that supplies what the platform needs
from it (placements/base.py); `for_stack` picks the stack's."""

from __future__ import annotations

from collections.abc import Sequence

from components.platform_secrets import PlatformSecrets
from placements.base import PlatformPlacement
from settings import Settings


def kind_for(cfg: Settings) -> type[PlatformPlacement]:
    """The placement of the stack, as a class: what it needs is known before it is built."""
    if cfg.is_cloud:
        # Imported here so that dev never loads the AWS and Cloudflare SDKs.
        from placements.host import HostPlacement

        return HostPlacement
    from placements.local import LocalPlacement

    return LocalPlacement


def for_stack(cfg: Settings, secrets: PlatformSecrets, hostnames: Sequence[str]) -> PlatformPlacement:
    return kind_for(cfg)(cfg, secrets, hostnames)
