"""A fresh account's service-linked roles (issue 26, item 8): `pulumi up` makes sure ECS's and
its autoscaling's exist before the first ECS cluster (a fresh account's first CreateCluster or
CreateService fails otherwise: "Unable to assume the service linked role"), against moto's IAM;
and every ECS resource of every cluster plan waits for it."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from deploy import service_roles
from placements.cluster import SERVICE_LINKED_ROLES
from testsupport.plans import CLOUD_STACKS, cluster_plan_for

ECS_TYPES = ("aws:ecs/cluster:Cluster", "aws:ecs/service:Service", "aws:appautoscaling/target:Target")


def test_missing_roles_are_created_once_and_never_twice():
    slept: list[float] = []
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        assert service_roles.ensure(iam, list(SERVICE_LINKED_ROLES), sleep=slept.append) == list(SERVICE_LINKED_ROLES)
        paths = {r["Path"] for r in iam.list_roles()["Roles"]}
        assert paths == {f"/aws-service-role/{s}/" for s in SERVICE_LINKED_ROLES}
        # A newly made role is waited for; a second run (the next `pulumi up`) changes nothing.
        assert service_roles.SETTLE_SECONDS in slept
        slept.clear()
        assert service_roles.ensure(iam, list(SERVICE_LINKED_ROLES), sleep=slept.append) == []
        assert slept == [] and len(iam.list_roles()["Roles"]) == len(SERVICE_LINKED_ROLES)


def test_a_role_made_between_the_check_and_the_create_is_not_an_error():
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        iam.create_service_linked_role(AWSServiceName="ecs.amazonaws.com")
        # The check saw no role (another stack's run made it just after): IAM refuses the create.
        real = iam.list_roles
        iam.list_roles = lambda **kw: {"Roles": []}
        assert service_roles.ensure(iam, ["ecs.amazonaws.com"], sleep=lambda s: None) == []
        iam.list_roles = real
        assert len(iam.list_roles()["Roles"]) == 1


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_ecs_resource_waits_for_the_service_linked_roles(stack):
    plan = cluster_plan_for(stack)
    (roles,) = [c for c in plan.of_type("command:local:Command") if c.name == "service-linked-roles"]
    assert roles.inputs["create"].split()[3:] == ["--region", plan.one("pulumi:providers:aws").inputs["region"],
                                                  *SERVICE_LINKED_ROLES]
    ecs = [r for r in plan.resources if r.type in ECS_TYPES]
    assert {r.type for r in ecs} == set(ECS_TYPES)
    late = [r.name for r in ecs if not plan.depends_transitively(r.urn, roles.urn)]
    assert late == []
