"""The SDK's private parts are used in one module, against the SDK range it was written for."""

from __future__ import annotations

import re
import subprocess

import sdk_internals
from testsupport.tools import ROOT


def test_the_pinned_sdk_is_inside_the_range_the_private_calls_were_written_for():
    pin = re.search(r"^pulumi==([\d.]+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert sdk_internals.SDK_RANGE[0] <= tuple(int(p) for p in pin.split(".")) < sdk_internals.SDK_RANGE[1]
    assert sdk_internals.check_version() is None


def test_another_sdk_is_named(monkeypatch):
    monkeypatch.setattr(sdk_internals, "sdk_version", lambda: (3, 280, 1))
    message = sdk_internals.check_version()
    assert message and "3.280.1" in message and "sdk_internals.py" in message


def test_no_private_sdk_name_is_used_anywhere_else():
    """`_sync_await`, `_special_*`, `rpc_manager`, `runtime_config.CONFIG` and the settings
    module's ROOT appear only in sdk_internals.py (git grep over the tracked Python files)."""
    pattern = r"_sync_await|_ensure_event_loop|_special_[a-z_]*sig|rpc_manager|config\.CONFIG|settings\.ROOT"
    found = subprocess.run(["git", "grep", "-nE", pattern, "--", "*.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout.splitlines()
    outside = [line for line in found if not line.startswith(("sdk_internals.py:", "tests/test_sdk_internals.py:"))]
    assert outside == []
