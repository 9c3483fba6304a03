"""Fixtures only: one offline run per stack, and the hooks that turn a missing real tool into a
skip on a laptop (listed in one closing line) or a failure in CI. Everything else the tests
share is in the pytest-free `testsupport` package."""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from offline import harness  # noqa: E402
from testsupport.plans import CLOUD_STACKS, STACKS, plan_for  # noqa: E402
from testsupport.tools import IN_CI, MissingToolError  # noqa: E402
from tools.plan import write_files  # noqa: E402

REAL_TOOLS = "real_tools"


# Modules whose every test drives a real server or program.
REAL_TOOL_MODULES = {"test_backup_drill", "test_backup_jobs", "test_docker_engine", "test_e2e", "test_edge_nginx",
                     "test_logical_dump", "test_postgres_server", "test_redis_server", "test_terraform", "test_bench",
                     "test_debs", "test_dev_up", "test_fault_drill"}
# In the other modules, a test that asks for one of these by name needs a real tool too.
REAL_TOOL_CALLS = ("require_tool(", "nginx_binary(", "PgCluster(", "pg_bin(", "node_module(", "Nginx(", "n8n_root(",
                   "blkid")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{REAL_TOOLS}: needs real servers or programs that .ci/run installs "
                                       f"(run them alone with -m {REAL_TOOLS}, leave them out with "
                                       f"-m 'not {REAL_TOOLS}')")


def _needs_real_tools(item: pytest.Item) -> bool:
    """The test's own body, or a helper or fixture of its module that it names, asks for a real
    tool (one level deep, which is as deep as this suite's helpers go)."""
    import inspect

    module = getattr(item, "module", None)
    function = getattr(item, "function", None)
    if module is None or function is None:
        return False
    if module.__name__.rsplit(".", 1)[-1] in REAL_TOOL_MODULES:
        return True
    sources = [inspect.getsource(function)]
    names = set(getattr(item, "fixturenames", ())) | set(function.__code__.co_names)
    for name in names:
        helper = getattr(module, name, None)
        helper = getattr(helper, "__wrapped__", helper)
        if inspect.isfunction(helper) and helper.__module__ == module.__name__:
            sources.append(inspect.getsource(helper))
    return any(call in source for source in sources for call in REAL_TOOL_CALLS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_real_tools(item):
            item.add_marker(REAL_TOOLS)


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


# ------------------------------------------------------------------ missing tools

_MISSING_TOOLS: dict[str, int] = {}


def _missing(exc: MissingToolError) -> None:
    if IN_CI:
        pytest.fail(f"{exc}; CI must not skip this test")
    _MISSING_TOOLS[exc.what] = _MISSING_TOOLS.get(exc.what, 0) + 1
    pytest.skip(str(exc))


def _missing_tools_skip() -> Generator[None, object, object]:
    try:
        return (yield)
    except MissingToolError as exc:
        _missing(exc)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _missing_tools_skip())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _missing_tools_skip())


def pytest_unconfigure(config: pytest.Config) -> None:
    """A newcomer's first run ends with one line: what is missing, and what installs it (after
    pytest's own summary, so it is the last thing on the screen). In CI nothing is skipped."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if _MISSING_TOOLS and reporter is not None:
        reporter.write_line(
            f"{sum(_MISSING_TOOLS.values())} tests skipped for want of: {', '.join(sorted(_MISSING_TOOLS))}. "
            "Install them all with: bash .ci/run (it asks sudo for apt-get)", yellow=True, bold=True)
