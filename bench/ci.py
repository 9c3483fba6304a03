"""CI's jobs, timed here: each group of testsupport/groups.py run by `bash .ci/run <group>`, one
after the other, as the workflows run them side by side (.github/workflows/tests.yml). What
.ci/run installs is already on this machine after the first group, as the workflows' caches
have it after the first run.

Prints per group the install and test seconds, then the simulated workflow: when the previews
can start (the fast group) and when the whole suite is green (the slowest group)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import table
from testsupport.groups import GROUPS

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = re.compile(r"^ci: tools installed in (\d+) s$", re.M)


@dataclass(frozen=True)
class Job:
    group: str
    install_s: float
    tests_s: float
    passed: bool

    @property
    def total_s(self) -> float:
        return self.install_s + self.tests_s


def parse(group: str, stderr: str, wall_s: float, passed: bool) -> Job:
    """A group's figures from .ci/run's own lines (the fast group installs nothing)."""
    found = INSTALLED.search(stderr)
    install = float(found.group(1)) if found else 0.0
    return Job(group, install, max(wall_s - install, 0.0), passed)


def summary(jobs: Sequence[Job]) -> str:
    by = {job.group: job for job in jobs}
    fast = by["fast"].total_s if "fast" in by else float("nan")
    slowest = max(jobs, key=lambda job: job.total_s)
    return (f"previews can start after {fast:.0f} s (fast); whole suite green after {slowest.total_s:.0f} s "
            f"({slowest.group}); one machine in sequence {sum(job.total_s for job in jobs):.0f} s")


def run(groups: Sequence[str] = GROUPS, directory: Path = ROOT) -> tuple[str, str]:
    jobs = []
    for group in groups:
        started = time.monotonic()
        result = subprocess.run(["bash", ".ci/run", group], cwd=directory, capture_output=True, text=True)
        jobs.append(parse(group, result.stderr, time.monotonic() - started, result.returncode == 0))
    rows = [[job.group, f"{job.install_s:.0f}", f"{job.tests_s:.0f}", f"{job.total_s:.0f}",
             "passed" if job.passed else "FAILED"] for job in jobs]
    return table(["group", "install s", "tests s", "total s", "result"], rows), summary(jobs)
