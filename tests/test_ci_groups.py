"""The suite's groups (testsupport/groups.py), as CI runs them side by side and bench/ci.py times
them: every test in exactly one group (issue 28)."""

from __future__ import annotations

import pytest

from bench import ci
from testsupport import groups


def test_the_named_modules_exist_and_no_two_groups_share_one():
    named = [module for modules in groups.MODULES.values() for module in modules]
    assert len(named) == len(set(named))
    assert all((groups.ROOT / module).is_file() for module in named), named


def test_servers_take_every_real_tool_module_the_others_leave_and_fast_the_rest():
    servers = groups.pytest_args("servers")
    assert servers[:2] == ["-m", "real_tools"]
    assert {a.removeprefix("--ignore=") for a in servers[2:]} == {m for ms in groups.MODULES.values() for m in ms}
    assert groups.pytest_args("fast")[:2] == ["-m", "not real_tools"]
    with pytest.raises(SystemExit, match="no test group 'nope'"):
        groups.pytest_args("nope")


def test_the_ci_benchmark_reads_install_and_test_time_from_ci_run():
    job = ci.parse("browser", "Docker engine 26.1 for the suite\nci: tools installed in 42 s\n", 300.0, True)
    assert (job.install_s, job.tests_s, job.total_s) == (42.0, 258.0, 300.0)
    assert ci.parse("fast", "ci group fast: 75 s\n", 75.0, True).install_s == 0.0
    text = ci.summary([ci.Job("fast", 0, 75, True), ci.Job("browser", 42, 258, True),
                       ci.Job("engine", 40, 200, True)])
    assert text == ("previews can start after 75 s (fast); whole suite green after 300 s (browser); "
                    "one machine in sequence 615 s")
