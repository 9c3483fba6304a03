"""The offline plan of each stack, run once per process, and what the tests read from it."""

from __future__ import annotations

from settings import CLOUD_STACKS, STACKS
from tools import harness

__all__ = ["CLOUD_STACKS", "STACKS", "container_env", "plan_for"]

_PLANS: dict[str, harness.Plan] = {}


def plan_for(stack: str) -> harness.Plan:
    if stack not in _PLANS:
        _PLANS[stack] = harness.run(stack)
    return _PLANS[stack]


def container_env(container: harness.Registration) -> dict[str, str]:
    """A registered container's environment as a dict, secret or not."""
    return dict(item.split("=", 1) for item in harness.unwrap(container.inputs["envs"]))
