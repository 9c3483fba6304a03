"""Bad input fails before anything is registered, with one message that names key and stack."""

from __future__ import annotations

import dataclasses

import pytest

import settings
from offline import harness
from testsupport.plans import STACKS

# (stack, overrides, key named in the message, words the message must contain)
BAD_INPUTS = [
    ("dev", {"apiReplicas": "two"}, "apiReplicas", ["an integer", "'two'"]),
    ("dev", {"apiReplicas": 0}, "apiReplicas", ["an integer from 1", "'0'"]),
    ("staging", {"apiReplicas": "1.5"}, "apiReplicas", ["an integer", "'1.5'"]),
    ("dev", {"frontendReplicas": True}, "frontendReplicas", ["an integer", "true"]),
    ("production", {"apiReplicas": 1}, "apiReplicas", ["at least 2 on production", "given 1"]),
    ("staging", {"adminCidrs": ["10.0.0.300/24"]}, "adminCidrs", ["CIDR", "10.0.0.300/24"]),
    ("staging", {"adminCidrs": ["10.0.0.1/24"]}, "adminCidrs", ["host bits set"]),
    ("staging", {"adminCidrs": ["10.0.0.0"]}, "adminCidrs", ["CIDR block"]),
    ("production", {"adminCidrs": ["0.0.0.0/0"]}, "adminCidrs", ["not the whole internet"]),
    ("production", {"adminCidrs": []}, "adminCidrs", ["at least one CIDR"]),
    ("dev", {"adminCidrs": "office"}, "adminCidrs", ["a list of CIDR blocks"]),
    ("staging", {"domain": "https://example.com"}, "domain", ["no scheme, path or port"]),
    ("staging", {"domain": "example.com/blog"}, "domain", ["no scheme, path or port"]),
    ("staging", {"domain": "example.com:8443"}, "domain", ["no scheme, path or port"]),
    ("staging", {"domain": "Example.com"}, "domain", ["lower-case"]),
    ("staging", {"domain": "exa_mple.com"}, "domain", ["valid DNS host name"]),
    ("dev", {"images": {"api": "ghcr.io/storiesofsoftware/api"}}, "images.api", ["version tag"]),
    ("dev", {"images": {"redis": "redis:latest"}}, "images.redis", ["not 'latest'"]),
    ("dev", {"images": {"postgress": "postgres:16.10"}}, "images.postgress", ["a service name"]),
    ("dev", {"images": "redis:7"}, "images", ["an object keyed by service name"]),
    ("dev", {"limits": {"api": {"memory": "lots"}}}, "limits.api.memory", ["a size with a unit", "given 'lots'"]),
    ("dev", {"limits": {"api": {"memory": "512"}}}, "limits.api.memory", ["a size with a unit"]),
    ("dev", {"limits": {"redis": {"cpus": "fast"}}}, "limits.redis.cpus", ["a number of CPUs", "given 'fast'"]),
    ("dev", {"limits": {"redis": {"swap": "1g"}}}, "limits.redis", ["unknown: swap"]),
    ("dev", {"apiReplica": 2}, "apiReplica", ["unknown key", "did you mean storiesofsoftware:apiReplicas"]),
    ("production", {"bogusSetting": "x"}, "bogusSetting", ["unknown key"]),
    ("dev", {"instanceType": "t3.large"}, "instanceType", ["applies to staging, production only"]),
    ("staging", {"dockerHost": "unix:///var/run/docker.sock"}, "dockerHost", ["applies to dev only"]),
    ("production", {"edgeSubnet": "10.213.0.0/24"}, "edgeSubnet", ["applies to dev only"]),
    ("dev", {"edgeSubnet": "8.8.8.0/24"}, "edgeSubnet", ["a private IPv4 block"]),
    ("dev", {"edgeSubnet": "10.0.0.0/8"}, "edgeSubnet", ["from /16 to /28"]),
    ("dev", {"edgeSubnet": "10.213.0.1/24"}, "edgeSubnet", ["host bits set"]),
    ("production", {"edgePorts": {"https": 8443}}, "edgePorts", ["applies to dev only"]),
    ("dev", {"edgePorts": {"https": 80}}, "edgePorts", ["two different ports"]),
    ("dev", {"edgePorts": {"https": 70000}}, "edgePorts.https", ["an integer from 1 to 65535", "given 70000"]),
    ("dev", {"edgePorts": {"htps": 8443}}, "edgePorts", ['an object {"http": port, "https": port}']),
    ("dev", {"edgePorts": 8443}, "edgePorts", ['an object {"http": port, "https": port}']),
    ("staging", {"instanceType": "large"}, "instanceType", ["an EC2 instance type"]),
    ("staging", {"awsRegion": "Europe"}, "awsRegion", ["an AWS region"]),
    ("staging", {"dataVolumeGb": 5}, "dataVolumeGb", ["an integer from 10"]),
    ("dev", {"features": {"n8n": "yes"}}, "features.n8n", ["true or false", "given 'yes'"]),
    ("dev", {"sendgridApiKey": "SG.plain-text"}, "sendgridApiKey", ["expected a secret"]),
    ("dev", {"registry": {"server": "ghcr.io"}}, "registry", ["exactly 'server' and 'username'"]),
    # The placement (issue 19).
    ("dev", {"placement": "cluster"}, "placement", ["applies to staging, production only"]),
    ("production", {"placement": "kubernetes"}, "placement", ["one of host, cluster", "'kubernetes'"]),
    ("staging", {"cluster": {"databaseClass": "db.t4g.micro"}}, "cluster", ["no value with placement host"]),
    ("production", {"placement": "cluster", "cluster": {"tasks": {"api": {"min": 1, "max": 4}}}},
     "cluster.tasks.api.min", ["at least 2 on production", "given 1"]),
    ("staging", {"placement": "cluster", "cluster": {"tasks": {"edge": {"min": 3, "max": 2}}}},
     "cluster.tasks.edge", ["max at least min"]),
    ("staging", {"placement": "cluster", "cluster": {"tasks": {"worker": {"min": 1, "max": 2}}}},
     "cluster.tasks", ["an object keyed by edge, api, frontend, n8nWorker"]),
    ("staging", {"placement": "cluster", "cluster": {"databaseClass": "db.m5.24xlarge"}},
     "cluster.databaseClass", ["one of db.t4g.micro", "given 'db.m5.24xlarge'"]),
    ("staging", {"placement": "cluster", "cluster": {"cacheNodeType": "t4g.small"}},
     "cluster.cacheNodeType", ["an ElastiCache node type", "given 't4g.small'"]),
    ("staging", {"placement": "cluster", "cluster": {"databaseStorageGb": 10}},
     "cluster.databaseStorageGb", ["an integer from 20", "given 10"]),
    ("staging", {"placement": "cluster", "cluster": {"replicas": 3}}, "cluster", ["unknown: replicas"]),
    ("production", {"placement": "cluster", "backupRetentionDays": 60}, "backupRetentionDays",
     ["7 to 35 with placement cluster", "given 60"]),
    # Fargate's pulls (issue 26, item 6): no anonymous Docker Hub through the NAT's one address.
    ("production", {"placement": "cluster", "images": {"n8n": "n8nio/n8n:1.123.5"}}, "images.n8n",
     ["Docker Hub admits 10 anonymous pulls an hour", "'n8nio/n8n:1.123.5'"]),
    ("staging", {"placement": "cluster", "images": {"nginx": "nginx:1.28.0-alpine@sha256:" + "0" * 64}},
     "images.nginx", ["a tag without a digest", "does not fetch an image pulled by digest"]),
    ("staging", {"placement": "cluster", "registry": {"server": "ghcr.io", "username": "bot"},
                 "images": {"api": "sos/api:1.0.0"}}, "registry", ["registryToken too with placement cluster"]),
]


@pytest.mark.parametrize("stack,overrides,key,words", BAD_INPUTS,
                         ids=[f"{s}-{k}-{i}" for i, (s, _, k, _) in enumerate(BAD_INPUTS)])
def test_bad_input_fails_with_key_and_stack_and_registers_nothing(stack, overrides, key, words):
    with pytest.raises(settings.ConfigError) as info:
        harness.run(stack, overrides=overrides)
    message = str(info.value)
    assert f"storiesofsoftware:{key} on stack {stack}: " in message
    for word in words:
        assert word in message, message
    assert "Traceback" not in message
    # Validation runs before the first resource: the engine would create nothing.
    assert info.value.plan.resources == []


def test_every_problem_is_reported_at_once():
    overrides = {"apiReplicas": 0, "domain": "http://x.com", "images": {"nginx": "nginx"},
                 "limits": {"api": {"memory": "big"}}, "colour": "blue"}
    with pytest.raises(settings.ConfigError) as info:
        harness.run("staging", overrides=overrides)
    keys = ["apiReplicas", "domain", "images.nginx", "limits.api.memory", "colour"]
    assert len(info.value.problems) == len(keys)
    for key in keys:
        assert f"storiesofsoftware:{key} on stack staging" in str(info.value)


def test_config_error_is_a_run_error_so_pulumi_prints_no_traceback():
    import pulumi

    assert issubclass(settings.ConfigError, pulumi.RunError)


def test_unknown_stack_is_refused_by_settings():
    with pytest.raises(settings.ConfigError, match="stack 'qa' is not one of dev, staging, production"):
        settings.load(stack="qa", project="storiesofsoftware")


def test_unknown_stack_is_refused_by_the_harness():
    with pytest.raises(harness.StackNotFoundError, match="Pulumi.qa.yaml does not exist"):
        harness.run("qa")


@pytest.mark.parametrize("raw,mb", [("512m", 512), ("512M", 512), ("1g", 1024), ("1Gi", 1024),
                                    ("1.5g", 1536), ("256MiB", 256), ("262144k", 256)])
def test_memory_sizes(raw, mb):
    assert settings.parse_memory(raw) == mb


@pytest.mark.parametrize("raw", ["postgres:16.10-alpine", "ghcr.io/org/api:1.2.3",
                                 "localhost:5000/team/app:v2",
                                 "redis:7.4.5@sha256:" + "a" * 64])
def test_pinned_images_are_accepted(raw):
    assert settings.parse_image(raw) == raw


@pytest.mark.parametrize("raw", ["postgres", "localhost:5000/app", "redis:latest",
                                 "redis@sha256:" + "a" * 64, "Redis:7"])
def test_unpinned_images_are_refused(raw):
    with pytest.raises(settings.Invalid):
        settings.parse_image(raw)


def test_overrides_merge_over_the_stack_defaults():
    plan = harness.run("production", overrides={
        "apiReplicas": "4", "limits": {"api": {"memory": "1Gi"}},
        "images": {"api": "ghcr.io/storiesofsoftware/api:2.0.0"},
    })
    assert plan.resources  # a valid override still deploys


def test_settings_are_immutable_and_typed():
    cfg = _loaded("dev", {"apiReplicas": "2"})
    assert cfg.api_replicas == 2 and isinstance(cfg.api_replicas, int)
    assert cfg.limits["postgres"].memory_mb == 1024
    assert cfg.images["redis"] == settings.DEFAULT_IMAGES["redis"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.api_replicas = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.images["redis"] = "redis:8"  # type: ignore[index]


@pytest.mark.parametrize("stack", STACKS)
def test_every_default_passes_its_own_validation(stack):
    # A default that its parser rejects would make the committed stack unusable.
    harness.run(stack)


def test_cluster_settings_merge_over_the_stack_defaults():
    """A stack sets only the cluster sizes it changes; the rest keep the stack's defaults."""
    plan = harness.run("production", overrides={"placement": "cluster",
                                                "cluster": {"tasks": {"api": {"min": 3, "max": 12}}}})
    bounds = {t.name: (t.inputs["minCapacity"], t.inputs["maxCapacity"])
              for t in plan.of_type("aws:appautoscaling/target:Target")}
    assert bounds["api-scaling"] == (3, 12)
    assert bounds["frontend-scaling"] == (2, 8), "an unset service keeps production's default"
    assert plan.one("aws:rds/instance:Instance").inputs["instanceClass"] == "db.t4g.medium"


def _loaded(stack: str, config: dict[str, str]) -> settings.Settings:
    import sdk_internals

    sdk_internals.set_all_config({f"storiesofsoftware:{k}": v for k, v in config.items()}, [])
    try:
        return settings.load(stack=stack, project="storiesofsoftware")
    finally:
        sdk_internals.set_all_config({}, [])


@pytest.mark.parametrize("stack,config,present", [
    ("dev", {}, {"local"}),
    ("staging", {"adminCidrs": '["203.0.113.7/32"]'}, {"aws", "host"}),
    ("production", {"adminCidrs": '["203.0.113.7/32"]', "placement": "cluster"}, {"aws", "cluster"}),
])
def test_each_placement_gets_its_own_settings_and_no_stand_ins_for_the_others(stack, config, present):
    """A setting of one placement is absent (None) on another, never an empty string or a 0
    that a later reader could take for a value (issue 27)."""
    cfg = _loaded(stack, config)
    groups = {"aws": cfg.aws, "host": cfg.host, "cluster": cfg.cluster, "local": cfg.local}
    assert {name for name, group in groups.items() if group is not None} == present
    for group in groups.values():
        if group is not None and dataclasses.is_dataclass(group):
            values = {f.name: getattr(group, f.name) for f in dataclasses.fields(group)}
            stand_ins = {k for k, v in values.items() if v in ("", 0) and k != "docker_host"}
            assert not stand_ins, f"{stack}: {sorted(stand_ins)} set to a stand-in value"


def test_a_nested_error_shows_the_fields_value_not_the_merged_object():
    """Before issue 28 a bad `cluster.databaseClass` printed the whole object merged over the
    stack's defaults, which the operator never wrote."""
    with pytest.raises(settings.ConfigError) as info:
        harness.run("staging", overrides={"placement": "cluster", "cluster": {"databaseClass": "db.x9"}})
    (problem,) = info.value.problems
    assert problem.startswith("storiesofsoftware:cluster.databaseClass on stack staging: expected one of")
    assert problem.endswith("given 'db.x9'") and "databaseStorageGb" not in problem


@pytest.mark.parametrize("stack,kind", [("dev", "dev"), ("staging", "staging"), ("dev-alice", "dev"),
                                        ("dev-team-2", "dev"), ("dev-", None), ("dev_alice", None),
                                        ("Dev-Alice", None), ("staging-alice", None), ("dev-" + "a" * 29, None)])
def test_a_developer_stack_is_a_dev(stack, kind):
    assert settings.stack_kind(stack) == kind


def test_a_developer_stack_takes_devs_defaults_and_rules():
    cfg = _loaded("dev-alice", {})
    assert (cfg.kind, cfg.is_cloud, cfg.name_prefix, cfg.local is not None) == ("dev", False, "sos-dev-alice", True)
    with pytest.raises(settings.ConfigError, match="instanceType on stack dev-alice: expected no value"):
        _loaded("dev-alice", {"instanceType": "t3.large"})
    with pytest.raises(settings.ConfigError, match="nor a developer's dev-<name>"):
        _loaded("dev_alice", {})


def test_a_developer_stack_shares_no_docker_name_with_dev():
    """Two dev stacks on one engine: every container, volume and network is the stack's own."""
    def names(plan: harness.Plan) -> set[str]:
        # Images are the engine's, shared by every stack on it.
        kinds = ("docker:index/container:Container", "docker:index/volume:Volume", "docker:index/network:Network")
        return {r.inputs["name"] for r in plan.resources if r.type in kinds and isinstance(r.inputs.get("name"), str)}

    dev, alice = harness.run("dev"), harness.run("dev-alice")
    assert len(alice.resources) == len(dev.resources)
    assert names(alice) and all(n.startswith("sos-dev-alice") for n in names(alice)), names(alice)
    assert not names(alice) & names(dev)
