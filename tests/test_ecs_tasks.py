"""Issue 19: ECS task definitions as configs/ecs.py renders them, validated against the
RegisterTaskDefinition input shape of the ECS service model that botocore ships."""

from __future__ import annotations

import copy

import pytest

from configs import ecs
from testsupport.aws_models import api_errors

EXECUTION = "arn:aws:iam::123456789012:role/sos-production-api-execution"
TASK = "arn:aws:iam::123456789012:role/sos-production-api-task"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:sos-production/api-AbCdEf"
API = ecs.TaskSpec(
    name="api", image="ghcr.io/storiesofsoftware/api:1.0.0", cpus=1.0, memory_mb=768, user="1001:1001", port=3001,
    health_command=["CMD", "node", "-e", "fetch('http://127.0.0.1:3001/health').then(r=>process.exit(r.ok?0:1))"],
    log_group="/sos/production/api", region="us-east-1",
    environment={"NODE_ENV": "production", "PORT": "3001"},
    secrets={"DATABASE_URL": f"{SECRET}:databaseUrl::", "JWT_ACCESS_SECRET": f"{SECRET}:jwtAccess::"},
    stop_timeout=30)


def _errors(request: dict) -> str:
    return api_errors("ecs", "RegisterTaskDefinition", request)


def test_the_rendered_request_is_what_the_ecs_api_takes():
    request = ecs.register_request(API, "sos-production-api", EXECUTION, TASK)
    assert _errors(request) == ""
    (container,) = request["containerDefinitions"]
    assert container["readonlyRootFilesystem"] is True and "privileged" not in container
    assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert container["user"] == "1001:1001" and container["stopTimeout"] == 30
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert {e["name"] for e in container["environment"]} == {"NODE_ENV", "PORT"}
    assert {s["name"] for s in container["secrets"]} == {"DATABASE_URL", "JWT_ACCESS_SECRET"}
    assert (request["cpu"], request["memory"]) == ("1024", "2048")


def test_the_validator_catches_what_the_api_would_refuse():
    """Shown able to fail: a wrong type, an unknown field and a missing required one."""
    request = ecs.register_request(API, "sos-production-api", EXECUTION, TASK)
    planted = copy.deepcopy(request)
    planted["containerDefinitions"][0]["readonlyRootFilesystem"] = "yes"
    planted["containerDefinitions"][0]["secret"] = []
    del planted["family"]
    report = _errors(planted)
    assert "readonlyRootFilesystem" in report and "secret" in report and "family" in report


@pytest.mark.parametrize("cpus,memory,expected", [
    (0.25, 256, (256, 512)), (0.25, 1500, (256, 2048)), (0.5, 2048, (512, 2048)), (1.0, 768, (1024, 2048)),
    (1.5, 3000, (2048, 4096)), (4, 30000, (4096, 30720))])
def test_fargate_sizes_are_the_smallest_that_hold_the_limits(cpus, memory, expected):
    units, mib = ecs.fargate_size(cpus, memory)
    assert (units, mib) == expected
    assert mib in ecs.FARGATE_SIZES[units] and units >= cpus * 1024 and mib >= memory


def test_unsafe_tasks_are_refused():
    with pytest.raises(ValueError, match="non-root"):
        ecs.container_definition(ecs.TaskSpec(**{**API.__dict__, "user": "0:0"}))
    with pytest.raises(ValueError, match="both as environment and as a secret"):
        ecs.container_definition(ecs.TaskSpec(**{**API.__dict__, "environment": {"DATABASE_URL": "x"}}))
    with pytest.raises(ValueError, match="stop timeout"):
        ecs.container_definition(ecs.TaskSpec(**{**API.__dict__, "stop_timeout": 600}))
    with pytest.raises(ValueError, match="no Fargate size"):
        ecs.fargate_size(8, 1024)
