"""The offline plan of each stack, run once per process, and what the tests read from it."""

from __future__ import annotations

from configs import edge_release
from settings import CLOUD_STACKS, STACKS
from tools import harness
from tools.plan import container_files

__all__ = ["CLOUD_STACKS", "EDGE_CONF", "STACKS", "cluster_plan_for", "container_env", "container_files",
           "edge_release_files", "plan_for", "service_of"]

# Where `--write-files` puts the edge's nginx.conf (tools/plan.py, from the release command).
EDGE_CONF = "edge-release/nginx.conf"

_PLANS: dict[str, harness.Plan] = {}


def plan_for(stack: str) -> harness.Plan:
    if stack not in _PLANS:
        _PLANS[stack] = harness.run(stack)
    return _PLANS[stack]


_CLUSTER_PLANS: dict[str, harness.Plan] = {}


def cluster_plan_for(stack: str) -> harness.Plan:
    """The stack with `placement: cluster` (issue 19)."""
    if stack not in _CLUSTER_PLANS:
        _CLUSTER_PLANS[stack] = harness.run(stack, overrides={"placement": "cluster"})
    return _CLUSTER_PLANS[stack]


def service_of(container: harness.Registration) -> str:
    """A registered container's `service` label ("" for anything else)."""
    return {i["label"]: i["value"] for i in container.inputs.get("labels") or []}.get("service", "")


def container_env(container: harness.Registration) -> dict[str, str]:
    """A registered container's environment as a dict, secret or not."""
    return dict(item.split("=", 1) for item in harness.unwrap(container.inputs["envs"]))


def edge_release_files(plan: harness.Plan) -> tuple[harness.Registration, dict[str, edge_release.ReleaseFile]]:
    """The edge's release command and the files of the release it installs."""
    command = next(r for r in plan.resources if r.type.startswith("command:") and r.name == "edge-release")
    return command, edge_release.unbundle(harness.unwrap(command.inputs["stdin"]))
