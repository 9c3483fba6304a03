"""The order AWS needs at create time (policy/ordering.py), over every stack and placement:
roles get their policies before anything makes AWS assume them, and an ECS service behind a
target group comes after a listener that forwards to it."""

from __future__ import annotations

import pytest

from offline import harness
from policy.ordering import Graph, Node, violations
from testsupport.plans import CLOUD_STACKS, STACKS, cluster_plan_for, plan_for


def graph_of(plan: harness.Plan) -> Graph:
    return plan.graph()


@pytest.mark.parametrize("stack,placement", [(s, "local" if s == "dev" else "host") for s in STACKS]
                         + [(s, "cluster") for s in CLOUD_STACKS])
def test_every_plan_creates_in_the_order_aws_needs(stack, placement):
    plan = cluster_plan_for(stack) if placement == "cluster" else plan_for(stack)
    assert violations(graph_of(plan)) == []


def _node(name: str, type_: str, deps: dict[str, list[str]] | None = None, after: list[str] | None = None) -> Node:
    props = {k: [f"urn:{v}" for v in vs] for k, vs in (deps or {}).items()}
    return Node(f"urn:{name}", type_, name, "", [*(u for vs in props.values() for u in vs),
                                                  *(f"urn:{a}" for a in after or [])], props)


def test_a_role_assumed_before_its_policy_is_found():
    role = _node("role", "aws:iam/role:Role")
    policy = _node("policy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment", {"role": ["role"]})
    early = _node("db", "aws:rds/instance:Instance", {"monitoringRoleArn": ["role"]})
    assert violations(Graph([role, policy, early])) == [
        "aws:rds/instance:Instance db makes AWS assume role before its policy policy exists"]
    late = _node("db", "aws:rds/instance:Instance", {"monitoringRoleArn": ["role"]}, after=["policy"])
    assert violations(Graph([role, policy, late])) == []
    # Through a task definition: the service is what makes ECS assume the execution role.
    task = _node("task", "aws:ecs/taskDefinition:TaskDefinition", {"executionRoleArn": ["role"]})
    service = _node("svc", "aws:ecs/service:Service", {"taskDefinition": ["task"]})
    assert violations(Graph([role, policy, task, service])) == [
        "aws:ecs/service:Service svc makes AWS assume role before its policy policy exists"]


def test_a_service_before_its_listener_is_found():
    group = _node("tg", "aws:lb/targetGroup:TargetGroup")
    listener = _node("https", "aws:lb/listener:Listener", {"defaultActions": ["tg"]})
    early = _node("svc", "aws:ecs/service:Service", {"loadBalancers": ["tg"]})
    assert violations(Graph([group, listener, early])) == [
        "aws:ecs/service:Service svc is created before any listener forwards to tg"]
    late = _node("svc", "aws:ecs/service:Service", {"loadBalancers": ["tg"]}, after=["https"])
    assert violations(Graph([group, listener, late])) == []
