"""What a service is does not depend on where it runs: its health check (command, start period,
interval, timeout, retries), its init process, its stop timeout and its user are the same in the host's containers and the cluster's
tasks (both read services/). The edge's was not before issue 27: a shell check with a 60 s start
period on the cluster, wget with 20 s on the host."""

from __future__ import annotations

import json

import pytest

from offline.harness import unwrap
from services.spec import seconds
from testsupport.plans import CLOUD_STACKS, cluster_plan_for, plan_for, service_of

CONTAINER = "docker:index/container:Container"


def _tasks(stack: str) -> dict[str, dict]:
    return {d["name"]: d for t in cluster_plan_for(stack).of_type("aws:ecs/taskDefinition:TaskDefinition")
            for d in json.loads(unwrap(t.inputs["containerDefinitions"]))}


@pytest.mark.parametrize("stack", CLOUD_STACKS)
@pytest.mark.parametrize("service,tasks", [("api", ["api"]), ("frontend", ["frontend"]),
                                           ("n8n", ["n8n", "n8n-webhook", "n8n-worker"]),
                                           # The edge's container keeps its Docker name.
                                           ("nginx", ["edge"])])
def test_health_and_stop_are_the_same_on_the_host_and_the_cluster(stack, service, tasks):
    container = min((c for c in plan_for(stack).of_type(CONTAINER) if service_of(c) == service), key=lambda c: c.name)
    check = unwrap(container.inputs["healthcheck"])
    definitions = _tasks(stack)
    for task in tasks:
        ecs = definitions[task]
        assert ecs["healthCheck"]["command"] == check["tests"], task
        assert ecs["healthCheck"]["startPeriod"] == seconds(check["startPeriod"]), task
        assert ecs["healthCheck"]["interval"] == seconds(check["interval"]), task
        assert ecs["healthCheck"]["timeout"] == seconds(check["timeout"]), task
        assert ecs["healthCheck"]["retries"] == check["retries"], task
        # One init process, the placement's or the image's own (n8n's tini), never two.
        assert ecs["linuxParameters"]["initProcessEnabled"] == container.inputs["init"], task
        assert ecs["stopTimeout"] == container.inputs["stopTimeout"], task
        assert ecs["user"] == container.inputs["user"], task
