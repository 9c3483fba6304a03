"""docs/configuration.md's table of keys, generated from the schema so docs and code cannot drift."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from settings import EXTERNAL_SECRETS, KEYS, PROJECT, STACKS, Key
from settings.defaults import CLOUD_LIMITS, DEFAULT_IMAGES, DEV_LIMITS, LIMITED_SERVICES, SERVICES


def config_table() -> str:
    """The table of keys (docs/configuration.md), generated so docs and code cannot drift apart."""
    rows = ["| key | dev | staging | production | meaning |", "|---|---|---|---|---|"]

    def show(key: Key, value: Any) -> str:
        if value is None:
            return "—"
        if key.name in ("images", "limits"):
            return "per service, see below"
        return "`" + json.dumps(dict(value) if isinstance(value, Mapping) else value) + "`"

    for key in KEYS:
        cells = [show(key, key.defaults[s]) for s in STACKS]
        rows.append(f"| `{PROJECT}:{key.name}` | " + " | ".join(cells) + f" | {key.doc} |")
    for name in EXTERNAL_SECRETS:
        rows.append(f"| `{PROJECT}:{name}` (secret) | optional | optional | optional | "
                    "External credential; set with `pulumi config set --secret`. |")
    rows += ["", "Images (every stack):", "", "| service | image |", "|---|---|"]
    rows += [f"| `{s}` | `{DEFAULT_IMAGES[s]}` |" for s in SERVICES]
    rows += ["", "Limits (memory / CPUs / PIDs):", "", "| service | dev | staging, production |",
             "|---|---|---|"]
    for s in LIMITED_SERVICES:
        d, c = DEV_LIMITS[s], CLOUD_LIMITS[s]
        rows.append(f"| `{s}` | {d['memory']} / {d['cpus']} / {d['pids']} | "
                    f"{c['memory']} / {c['cpus']} / {c['pids']} |")
    return "\n".join(rows)
