"""Create-time order AWS needs but no schema states, checked over a whole plan's graph.

- IAM is eventually consistent (IAM User Guide, "Changes that I make are not always immediately
  visible"): a resource that makes AWS assume a role — an RDS instance's enhanced monitoring, an
  ECS service or task through its task definition, an instance through its profile, DLM, AWS
  Backup, flow logs — must be created after every policy of that role, or AWS fails it
  (`InvalidParameterValue: IAM role ARN value is invalid or does not include the required
  permissions for: ENHANCED_MONITORING`) or starts it without the permissions (tasks that
  cannot pull or read their secrets).
- An ECS service whose load balancer entry names a target group fails to create while no
  listener forwards to it (`The target group ... does not have an associated load balancer`,
  ECS developer guide and terraform-provider-aws issue #3495): the service comes after such a
  listener or listener rule.

Plain functions over a minimal node shape, so the offline plan (tests/test_create_order.py)
and any other graph can be judged alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ROLE = "aws:iam/role:Role"
ROLE_POLICIES = {"aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/rolePolicy:RolePolicy",
                 "aws:iam/policyAttachment:PolicyAttachment", "aws:iam/rolePoliciesExclusive:RolePoliciesExclusive"}
# What hands a role on to its user without assuming it itself.
ROLE_CARRIERS = {"aws:iam/instanceProfile:InstanceProfile", "aws:ecs/taskDefinition:TaskDefinition"}
SERVICE = "aws:ecs/service:Service"
FORWARDERS = {"aws:lb/listener:Listener", "aws:lb/listenerRule:ListenerRule"}


@dataclass(frozen=True)
class Node:
    urn: str
    type: str
    name: str
    parent: str
    dependencies: Sequence[str]                      # every resource it waits for
    property_dependencies: Mapping[str, Sequence[str]]  # input -> resources that input came from


class Graph:
    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = {n.urn: n for n in nodes}
        self.children: dict[str, list[str]] = {}
        for n in self.nodes.values():
            self.children.setdefault(n.parent, []).append(n.urn)

    def waits_for(self, urn: str, target: str) -> bool:
        """Through any chain of dependencies (one on a component means one on its children)."""
        seen: set[str] = set()
        todo = list(self.nodes[urn].dependencies) if urn in self.nodes else []
        while todo:
            cur = todo.pop()
            if cur == target:
                return True
            if cur in seen or cur not in self.nodes:
                continue
            seen.add(cur)
            todo.extend(self.nodes[cur].dependencies)
            todo.extend(self.children.get(cur, []))
        return False

    def _from(self, node: Node, types: set[str], *keys: str) -> set[str]:
        inputs = keys or tuple(node.property_dependencies)
        return {u for k in inputs for u in node.property_dependencies.get(k, ())
                if u in self.nodes and self.nodes[u].type in types}


def role_violations(graph: Graph) -> list[str]:
    policies: dict[str, set[str]] = {}
    for node in graph.nodes.values():
        if node.type in ROLE_POLICIES:
            for role in graph._from(node, {ROLE}):
                policies.setdefault(role, set()).add(node.urn)
    found = []
    for node in graph.nodes.values():
        if node.type.startswith("aws:iam/") or node.type in ROLE_CARRIERS:
            continue
        roles = graph._from(node, {ROLE})
        for carrier in graph._from(node, ROLE_CARRIERS):
            roles |= graph._from(graph.nodes[carrier], {ROLE})
        for role in sorted(roles):
            for policy in sorted(policies.get(role, ())):
                if not graph.waits_for(node.urn, policy):
                    found.append(f"{node.type} {node.name} makes AWS assume {graph.nodes[role].name} before "
                                 f"its policy {graph.nodes[policy].name} exists")
    return found


def listener_violations(graph: Graph) -> list[str]:
    forwarders: dict[str, set[str]] = {}
    for node in graph.nodes.values():
        if node.type in FORWARDERS:
            for group in graph._from(node, {"aws:lb/targetGroup:TargetGroup"}, "defaultActions", "actions"):
                forwarders.setdefault(group, set()).add(node.urn)
    found = []
    for node in graph.nodes.values():
        if node.type != SERVICE:
            continue
        for group in sorted(graph._from(node, {"aws:lb/targetGroup:TargetGroup"}, "loadBalancers")):
            if not any(graph.waits_for(node.urn, f) for f in forwarders.get(group, ())):
                found.append(f"{SERVICE} {node.name} is created before any listener forwards to "
                             f"{graph.nodes[group].name}")
    return found


def violations(graph: Graph) -> list[str]:
    return [*role_violations(graph), *listener_violations(graph)]
