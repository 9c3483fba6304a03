"""Every registered input is one the provider's Python SDK declares, of a type it declares
(testsupport/sdk_types.py), on every stack and placement."""

from __future__ import annotations

import pytest

from offline.harness import Registration
from testsupport import sdk_types
from testsupport.plans import cluster_plan_for, plan_for

PLANS = [("dev", False), ("staging", False), ("production", False), ("staging", True), ("production", True)]


@pytest.mark.parametrize(("stack", "cluster"), PLANS, ids=[f"{s}{'-cluster' if c else ''}" for s, c in PLANS])
def test_every_input_is_what_the_sdk_declares(stack, cluster):
    plan = cluster_plan_for(stack) if cluster else plan_for(stack)
    checked = [r for r in plan.resources if r.custom and not r.type.startswith("pulumi:providers")]
    assert len(checked) > 50
    found = {f"{r.type} {r.name}: {p}" for r in checked for p in sdk_types.problems(r)}
    assert found == set()


def _registration(type_: str, inputs: dict) -> Registration:
    return Registration(urn=f"urn:pulumi:s::p::{type_}::r", type=type_, name="r", parent="", provider="",
                        depends_on=[], property_dependencies={}, protect=False, retain_on_delete=False,
                        delete_before_replace=False, delete_before_replace_defined=False, custom=True,
                        ignore_changes=[], replace_on_changes=[], additional_secret_outputs=[], inputs=inputs)


@pytest.mark.parametrize(("type_", "inputs", "expected"), [
    ("aws:lb/targetGroup:TargetGroup", {"port": 8080, "healthCheck": {"healthyThreshhold": 2}},
     "healthCheck.healthyThreshhold: not an input of TargetGroupHealthCheckArgs"),
    ("aws:lb/targetGroup:TargetGroup", {"port": "8080"}, "port: str where the SDK takes int"),
    ("aws:ecs/service:Service", {"desiredCount": 2, "deploymentCircuitBreaker": {"enable": "yes", "rollback": True}},
     "deploymentCircuitBreaker.enable: str where the SDK takes bool"),
    ("aws:rds/instance:Instance", {"multiAZ": True}, "multiAZ: not an input of InstanceArgs"),
    ("aws:s3/bucketVersioning:BucketVersioning", {"bucket": "b", "versioningConfiguration": {"state": "Enabled"}},
     "versioningConfiguration.state: not an input of BucketVersioningVersioningConfigurationArgs"),
    ("command:local:Command", {"create": "true", "logging": "loud"}, "logging: str where the SDK takes Logging"),
])
def test_a_wrong_input_is_reported(type_, inputs, expected):
    assert expected in sdk_types.problems(_registration(type_, inputs))
