"""The offline plan of each stack, run once per process, and what the tests read from it."""

from __future__ import annotations

import json
from typing import Any

from configs import edge_release
from offline import harness
from settings import CLOUD_STACKS, STACKS
from tools.plan import container_files

__all__ = ["CLOUD_STACKS", "EDGE_CONF", "STACKS", "cluster_plan_for", "container_env", "container_files",
           "edge_release_files", "plan_for", "service_of", "task_container", "task_env"]

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


TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"


def task_container(plan: harness.Plan, task: str) -> dict[str, Any]:
    """The one container definition of a cluster task (`<task>-task-definition`)."""
    (container,) = json.loads(harness.unwrap(plan.one(TASK_DEFINITION, f"{task}-task-definition")
                                             .inputs["containerDefinitions"]))
    return container


def secrets_manager_values(plan: harness.Plan) -> dict[str, tuple[str, str]]:
    """Each Secrets Manager secret's ARN (as the mocks answer it) -> the string its current
    version holds, and that version's id."""
    arns = {plan.states[s.urn][0]: plan.states[s.urn][1]["arn"]
            for s in plan.of_type("aws:secretsmanager/secret:Secret")}
    return {arns[harness.unwrap(v.inputs["secretId"])]: (harness.unwrap(v.inputs["secretString"]),
                                                         plan.states[v.urn][1]["versionId"])
            for v in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")}


def task_env(plan: harness.Plan, task: str) -> dict[str, str]:
    """A cluster task's environment as ECS hands it to the process: `environment`, and each of
    `secrets` resolved as ECS resolves `<secret ARN>:<JSON key>:<version stage>:<version id>`
    (the key of the version the reference names, which must be the current one), from the values
    the plan's secret versions hold.
    A reference to anything the plan holds no value for (an SSM parameter, RDS's own master
    secret) fails."""
    container = task_container(plan, task)
    values = secrets_manager_values(plan)
    env = {e["name"]: e["value"] for e in container["environment"]}
    for secret in container["secrets"]:
        parts = secret["valueFrom"].split(":")
        arn, key, stage, version = ":".join(parts[:7]), *(parts[7:] + ["", "", ""])[:3]
        assert arn in values, f"{task}: {secret['name']} refers to {arn}, which the plan gives no value"
        text, current = values[arn]
        # The program names the current version by id (a rotation must make a new task definition).
        assert not stage and version == current, f"{task}: {secret['name']} is not the current version: " \
            f"{secret['valueFrom']}"
        env[secret["name"]] = json.loads(text)[key] if key else text
    return env
