"""Shared fixtures: one offline run per stack, and access to the real tools the tests need."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from settings import CLOUD_STACKS, STACKS  # noqa: E402 - one home, re-exported for the tests
from tools import harness  # noqa: E402
from tools.plan import write_files  # noqa: E402

IN_CI = os.environ.get("CI") == "true"


def require_tool(name: str) -> str:
    """Path of a real program the test needs. Skips on a laptop without it; fails in CI."""
    # Tools installed into this virtualenv (gixy) sit next to the interpreter; checkov has a
    # virtualenv of its own (.ci/run).
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent)) \
        or shutil.which(name, path=str(ROOT / ".ci" / "checkov-venv" / "bin"))
    if path:
        return path
    missing(name)


MISSING = "missing tool: "


def missing(what: str, detail: str = "") -> NoReturn:
    """A real tool the test needs is not on this machine: a skip on a laptop, named so the run
    ends with one line listing every missing tool; a failure in CI, which must not skip."""
    message = f"{MISSING}{what}" + (f" ({detail})" if detail else "") + "; .ci/run installs it"
    if IN_CI:
        pytest.fail(message + "; CI must not skip this test")
    pytest.skip(message)


_MISSING_TOOLS: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if MISSING in reason:
            tool = reason.split(MISSING, 1)[1].split(" (", 1)[0].split(";", 1)[0]
            _MISSING_TOOLS[tool] = _MISSING_TOOLS.get(tool, 0) + 1


def pytest_unconfigure(config: pytest.Config) -> None:
    """A newcomer's first run ends with one line: what is missing, and what installs it (after
    pytest's own summary, so it is the last thing on the screen). In CI nothing is skipped."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if _MISSING_TOOLS and reporter is not None:
        reporter.write_line(
            f"{sum(_MISSING_TOOLS.values())} tests skipped for want of: {', '.join(sorted(_MISSING_TOOLS))}. "
            "Install them all with: bash .ci/run (it asks sudo for apt-get)", yellow=True, bold=True)


def container_env(container: harness.Registration) -> dict[str, str]:
    """A registered container's environment as a dict, secret or not."""
    return dict(item.split("=", 1) for item in harness.unwrap(container.inputs["envs"]))


_PLANS: dict[str, harness.Plan] = {}


def plan_for(stack: str) -> harness.Plan:
    if stack not in _PLANS:
        _PLANS[stack] = harness.run(stack)
    return _PLANS[stack]


@pytest.fixture(params=STACKS)
def plan(request: pytest.FixtureRequest) -> harness.Plan:
    return plan_for(request.param)


@pytest.fixture(params=CLOUD_STACKS)
def cloud_plan(request: pytest.FixtureRequest) -> harness.Plan:
    return plan_for(request.param)


@pytest.fixture(scope="session")
def plan_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`--write-files` output of every stack, as the real tools will read it."""
    out = {}
    for stack in STACKS:
        directory = tmp_path_factory.mktemp(f"files-{stack}")
        write_files(plan_for(stack), directory)
        out[stack] = directory
    return out
