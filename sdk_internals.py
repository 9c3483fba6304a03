"""Every use of the Pulumi Python SDK's private parts, in one place.

The offline plan and the settings loader need a few things the SDK does not export: the wire
format's special signatures (to see secrets and resource references in a registration), its
synchronous await and event loop helper (the mock monitor is called from a thread), the root
stack and RPC bookkeeping (to run the program once per stack in one process), and the engine's
config map (to list every key given, typos included). They were written against the SDK range
below; `check_version()` says so when another SDK is installed, and a test holds the pin
(requirements.txt) inside it.

The mock engine (offline/harness.py) also reaches below the SDK's documented surface: the mock
monitor's base (`pulumi.runtime.mocks`), the registration protocol (`pulumi.runtime.proto.
resource_pb2`, `pulumi.runtime.rpc`) and `pulumi.runtime.stack.run_in_stack`; those stay there,
beside the only code that uses them, under the same SDK pin.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import pulumi
from pulumi.runtime import config as _config
from pulumi.runtime import rpc as _rpc
from pulumi.runtime import settings as _settings
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

# Inclusive lower bound, exclusive upper bound: the SDK releases these were read from.
SDK_RANGE = ((3, 272, 0), (3, 273, 0))

T = TypeVar("T")

SIG_KEY = _rpc._special_sig_key
SECRET_SIG = _rpc._special_secret_sig
RESOURCE_SIG = _rpc._special_resource_sig
ASSET_SIG = _rpc._special_asset_sig
ARCHIVE_SIG = _rpc._special_archive_sig
OUTPUT_VALUE_SIG = _rpc._special_output_value_sig


def sdk_version() -> tuple[int, int, int]:
    from importlib.metadata import version

    major, minor, patch = (int(part) for part in version("pulumi").split(".")[:3])
    return major, minor, patch


def check_version() -> str | None:
    """None when the installed SDK is one these were written for, else a sentence saying not."""
    low, high = SDK_RANGE
    installed = sdk_version()
    if low <= installed < high:
        return None
    return (f"pulumi {'.'.join(map(str, installed))} is outside the range sdk_internals.py was written "
            f"for ({'.'.join(map(str, low))} up to {'.'.join(map(str, high))}): re-read its private calls")


def sync_await(awaitable: Awaitable[T]) -> T:
    return _sync_await(awaitable)


def ensure_event_loop() -> None:
    _ensure_event_loop()


def serialize(properties: dict[str, Any]) -> Any:
    return _sync_await(_rpc.serialize_properties(properties, {}))


def reset_root_stack() -> None:
    """Forget the previous run's root stack and pending RPCs, so the next run starts fresh."""
    _settings.ROOT.set(None)


def clear_run_state() -> None:
    _settings.ROOT.set(None)
    _settings.SETTINGS.rpc_manager.clear()
    _settings.SETTINGS.outputs.clear()


def engine_config() -> dict[str, str]:
    """Every config key the engine passed (environment and program-set), in JSON text form."""
    return {**_config.get_config_env(), **_config.CONFIG.get()}


def is_config_secret(key: str) -> bool:
    return _config.is_config_secret(key)


def set_all_config(config: dict[str, str], secret_keys: list[str]) -> None:
    pulumi.runtime.set_all_config(config, secret_keys)
