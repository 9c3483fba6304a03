"""The service specs (services/) and the checks each placement applies when it runs them: a
mistake in a spec fails before anything is registered, with the service named."""

from __future__ import annotations

import dataclasses

import pytest

import sdk_internals
import settings
from configs import ecs
from placements.base import check_steps
from placements.cluster_tasks import task_spec
from services import api, edge, frontend
from services.spec import Scratch, ServiceSpec, StepSpec, Wiring


@pytest.fixture(scope="module")
def cfg() -> settings.Settings:
    sdk_internals.set_all_config({}, [])
    return settings.load(stack="dev", project="storiesofsoftware")


class _Storage:
    endpoint = "https://s3.example"
    region = "us-east-1"
    force_path_style = False
    buckets = {"content": "c", "images": "i", "backups": "b"}
    access_key_id = None
    secret_access_key = None


@pytest.fixture
def wiring() -> Wiring:
    return Wiring(storage=_Storage(), database_url="postgresql://x", redis_url="redis://y", postgres_host="db")


def test_a_step_takes_secrets_only_from_the_service_it_runs_before(cfg, wiring):
    spec = api.service(cfg, wiring, "a", "r")
    check_steps(spec, [api.migrate(cfg), api.indexes(cfg)])
    with pytest.raises(ValueError, match="api-migrate.*'api'.*'frontend'"):
        check_steps(frontend.service(cfg, wiring), [api.migrate(cfg)])
    wrong = dataclasses.replace(api.migrate(cfg), secrets=("DATABASE_URL", "NO_SUCH_SECRET"))
    with pytest.raises(ValueError, match="NO_SUCH_SECRET"):
        check_steps(spec, [wrong])


def test_a_step_with_secrets_names_their_owner(cfg):
    with pytest.raises(ValueError, match="owner"):
        StepSpec(name="s", image="i:1", limits=cfg.limits["api"], user="1:1", args=("x",), secrets=("A",))


def test_a_spec_needs_only_data_stores(cfg, wiring):
    with pytest.raises(ValueError, match="queue"):
        dataclasses.replace(frontend.service(cfg, wiring), needs=frozenset({"queue"}))


def test_the_cluster_refuses_a_writable_path_it_cannot_make_as_asked(cfg):
    """Fargate's tmpfs is noexec and 1777: an executable or private path would be silently weaker."""
    spec = edge.service(cfg)
    task, _ = task_spec(spec, "staging", "us-east-1")
    assert [s.path for s in task.writable] == ["/tmp"]
    for flag in ("executable", "private"):
        weaker = dataclasses.replace(spec, writable=(Scratch("/tmp", 64, **{flag: True}),))
        with pytest.raises(ValueError, match="Fargate"):
            task_spec(weaker, "staging", "us-east-1")


def test_the_cluster_runs_the_specs_health_check_within_ecs_ranges(cfg, wiring):
    spec: ServiceSpec = frontend.service(cfg, wiring)
    task, _ = task_spec(spec, "staging", "us-east-1")
    check = ecs.container_definition(task)["healthCheck"]
    assert (check["interval"], check["timeout"], check["retries"], check["startPeriod"]) == (10, 5, 5, 30)
    too_often = dataclasses.replace(spec, health=dataclasses.replace(spec.health, interval="4s"))
    with pytest.raises(ValueError, match="interval of 5 to 300"):
        ecs.container_definition(task_spec(too_often, "staging", "us-east-1")[0])
