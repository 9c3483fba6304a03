"""The one place that reads `pulumi.Config`: `types` (what a run gets), `parsers`, `schema` (one
row per key), `loader` (validation and the stack rules); this module names what the rest of
the program uses.

Every key of the `storiesofsoftware` namespace is declared once in `KEYS`, with its parser, its
default per stack and its documentation. `load()` reads the stack's config, validates all of it,
and either returns an immutable `Settings` or raises one `ConfigError` that lists every problem
(so an operator fixes a stack file in one pass, and nothing is registered before that).
Components receive `Settings`; they never read config themselves.
"""

from __future__ import annotations

from settings.defaults import CLOUD_LIMITS, DEFAULT_IMAGES
from settings.loader import ROTATION_DATE_VARIABLE, config_table, load
from settings.parsers import CLUSTER_IMAGES, parse_image, parse_limits, parse_memory
from settings.schema import EXTERNAL_SECRETS, KEYS, KEYS_BY_NAME, Key
from settings.types import (
    CLOUD_STACKS,
    PROJECT,
    STACKS,
    AwsSettings,
    ConfigError,
    EdgePorts,
    HostSizes,
    Invalid,
    Limits,
    LocalSettings,
    Registry,
    Settings,
    stack_kind,
)

__all__ = [
    "CLOUD_LIMITS", "CLOUD_STACKS", "CLUSTER_IMAGES", "DEFAULT_IMAGES", "EXTERNAL_SECRETS", "KEYS", "KEYS_BY_NAME",
    "PROJECT", "ROTATION_DATE_VARIABLE", "STACKS", "AwsSettings", "ConfigError", "EdgePorts", "HostSizes", "Invalid",
    "Key", "Limits", "LocalSettings", "Registry", "Settings", "config_table", "stack_kind", "load", "parse_image", "parse_limits", "parse_memory",
]
