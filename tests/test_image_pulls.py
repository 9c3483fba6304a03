"""Where Fargate pulls each image from (issue 26, item 6): through ECR's pull-through cache and the
VPC's ECR endpoints wherever ECR can cache the image, never anonymously from Docker Hub through
the NAT's shared address (10 pulls an hour), and with what a first pull needs in place.

The expected URIs follow the ECR user guide's "Pulling an image with a pull through cache rule"
(`<registry>/<prefix>/<repository>:<tag>`; Docker Hub's official images keep `library/`, others
omit it) and Docker's "Docker Official Images on ECR Public" (`public.ecr.aws/docker/library/`).
"""

from __future__ import annotations

import fnmatch
import json

import pytest

from components import image_cache
from configs import images
from offline import harness
from testsupport.plans import cluster_plan_for

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
NS = "sos-production"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
RULE = "aws:ecr/pullThroughCacheRule:PullThroughCacheRule"
TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SECRET = "aws:secretsmanager/secret:Secret"
GHCR = {"registry": {"server": "ghcr.io", "username": "deploy-bot"}, "registryToken": harness.Secret("ghp_token1234")}
HUB = {"registry": {"server": "https://index.docker.io/v1/", "username": "deploy-bot"},
       "registryToken": harness.Secret("dckr_pat_token1234"), "images": {"n8n": "n8nio/n8n:1.123.5"}}

# image, the server the `registry` setting has credentials for -> what the task names, credentials
ROUTES = [
    ("nginx:1.28.0-alpine", None, f"{REGISTRY}/{NS}/ecr-public/docker/library/nginx:1.28.0-alpine", False),
    ("docker.io/library/redis:7.4.5-alpine", None,
     f"{REGISTRY}/{NS}/ecr-public/docker/library/redis:7.4.5-alpine", False),
    ("postgres:16.10-alpine@sha256:" + "a" * 64, "ghcr.io",
     f"{REGISTRY}/{NS}/ecr-public/docker/library/postgres:16.10-alpine@sha256:" + "a" * 64, False),
    ("ghcr.io/storiesofsoftware/api:1.0.0", "ghcr.io", f"{REGISTRY}/{NS}/github/storiesofsoftware/api:1.0.0", False),
    ("ghcr.io/storiesofsoftware/api:1.0.0", "https://ghcr.io/", f"{REGISTRY}/{NS}/github/storiesofsoftware/api:1.0.0",
     False),
    # GHCR needs credentials for the cache; without them the public image is pulled directly.
    ("ghcr.io/n8n-io/n8n:1.123.5", None, "ghcr.io/n8n-io/n8n:1.123.5", False),
    ("n8nio/n8n:1.123.5", "https://index.docker.io/v1/", f"{REGISTRY}/{NS}/docker-hub/n8nio/n8n:1.123.5", False),
    ("quay.io/prometheus/node-exporter:v1.9.1", None, f"{REGISTRY}/{NS}/quay/prometheus/node-exporter:v1.9.1", False),
    # ECR caches Quay without authentication: a private Quay image is pulled directly with them.
    ("quay.io/sos/private:1.0.0", "quay.io", "quay.io/sos/private:1.0.0", True),
    # A registry ECR cannot cache: directly, with the setting's credentials when they are its.
    ("registry.example.com:5000/sos/api:1.0.0", "registry.example.com:5000", "registry.example.com:5000/sos/api:1.0.0",
     True),
    ("registry.example.com:5000/sos/api:1.0.0", "ghcr.io", "registry.example.com:5000/sos/api:1.0.0", False),
    ("localhost/sos/api:1.0.0", None, "localhost/sos/api:1.0.0", False),
]


@pytest.mark.parametrize("image,server,uri,credentials", ROUTES)
def test_each_image_is_pulled_from_where_ecr_documents(image, server, uri, credentials):
    route = images.route(image, server)
    assert route.uri(REGISTRY, NS) == uri
    assert route.credentials is credentials
    assert not route.anonymous_docker_hub


@pytest.mark.parametrize("image,server", [("n8nio/n8n:1.123.5", None), ("n8nio/n8n:1.123.5", "ghcr.io"),
                                          ("docker.io/grafana/grafana:12.1.1", None)])
def test_an_anonymous_docker_hub_pull_is_named(image, server):
    assert images.route(image, server).anonymous_docker_hub


def test_a_cached_image_pinned_by_digest_is_named():
    assert images.pinned_by_digest(images.route("postgres:16.10-alpine@sha256:" + "a" * 64, None))
    assert not images.pinned_by_digest(images.route("postgres:16.10-alpine", None))
    # Pulled directly, a digest is the registry's business.
    assert not images.pinned_by_digest(images.route("registry.example.com/sos/api:1@sha256:" + "a" * 64, None))


def test_a_prefix_ecr_refuses_is_refused_here():
    with pytest.raises(ValueError, match="2 to 30 characters"):
        images.cache_prefix("sos-a-stack-name-much-too-long", images.ECR_PUBLIC)


PLANS = {"staging": ("staging", {}), "production": ("production", {}), "production-ghcr": ("production", GHCR),
         "production-docker-hub": ("production", HUB)}


@pytest.fixture(scope="module", params=PLANS)
def plan(request) -> harness.Plan:
    stack, overrides = PLANS[request.param]
    return cluster_plan_for(stack) if not overrides else harness.run(stack, overrides={"placement": "cluster", **overrides})


def containers(plan: harness.Plan):
    for task in plan.of_type(TASK):
        (container,) = json.loads(harness.unwrap(task.inputs["containerDefinitions"]))
        yield task, container


def execution_policies(plan: harness.Plan, task: harness.Registration) -> list[dict]:
    role = task.name.removesuffix("-task-definition") + "-execution"
    return [json.loads(harness.unwrap(p.inputs["policy"])) for p in plan.of_type(ROLE_POLICY)
            if p.inputs["role"] == f"{role}-id"]


def from_docker_hub(container: dict) -> bool:
    """Named as a Docker Hub image, without credentials: pulled through the NAT anonymously."""
    return images.parse(container["image"]).registry == images.DOCKER_HUB and not container.get("repositoryCredentials")


def granted(policies: list[dict], action: str, resource: str) -> bool:
    return any(action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
               and any(fnmatch.fnmatchcase(resource, pattern)
                       for pattern in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]))
               for p in policies for s in p["Statement"] if s["Effect"] == "Allow")


def test_no_task_pulls_from_docker_hub_anonymously(plan):
    for task, container in containers(plan):
        assert not from_docker_hub(container), (task.name, container["image"])


def test_a_cached_image_has_its_rule_its_template_and_the_rights_of_a_first_pull(plan):
    rules = {r.inputs["ecrRepositoryPrefix"]: r for r in plan.of_type(RULE)}
    templates = {t.inputs["prefix"]: t for t in plan.of_type(TEMPLATE)}
    cached = 0
    for task, container in containers(plan):
        image = container["image"]
        if not image.startswith(f"{REGISTRY}/"):
            continue
        cached += 1
        repository = image.removeprefix(f"{REGISTRY}/").split(":")[0].split("@")[0]
        (prefix,) = [p for p in rules if repository.startswith(p + "/")]
        rule = rules[prefix]
        # The cache fetches from the rule's upstream; ECR creates the repository at the first
        # pull, shaped by the template of the same prefix.
        assert templates[prefix].inputs["appliedFors"] == ["PULL_THROUGH_CACHE"]
        assert json.loads(templates[prefix].inputs["lifecyclePolicy"])["rules"][0]["action"]["type"] == "expire"
        for needed in (rule, templates[prefix]):
            assert plan.depends_transitively(task.urn, needed.urn), (task.name, needed.name)
        arn = f"arn:aws:ecr:us-east-1:123456789012:repository/{repository}"
        policies = execution_policies(plan, task)
        for action in ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository"):
            assert granted(policies, action, arn), (task.name, action)
        if rule.inputs["upstreamRegistryUrl"] == "public.ecr.aws":
            assert repository.startswith(f"{prefix}/docker/library/"), repository
    assert cached >= 3  # the edge, the bootstrap and the indexes step run Docker's official images


def test_credentials_reach_ecr_in_the_secret_it_reads_and_stay_secret(plan, request):
    credentialed = 0
    for rule in plan.of_type(RULE):
        if rule.inputs["upstreamRegistryUrl"] in ("public.ecr.aws", "quay.io", "registry.k8s.io"):
            assert "credentialArn" not in rule.inputs
            continue
        secret = next(s for s in plan.of_type(SECRET) if rule.inputs["credentialArn"].split(":secret:")[1].startswith(
            s.inputs["namePrefix"]))
        # ECR's service-linked role reads only secrets under this prefix.
        assert secret.inputs["namePrefix"].startswith("ecr-pullthroughcache/")
        version = next(v for v in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")
                       if v.name == f"{secret.name}-value")
        assert isinstance(version.inputs["secretString"], harness.Secret)
        assert set(json.loads(version.inputs["secretString"].value)) == {"username", "accessToken"}
        credentialed += 1
    # One credentialed upstream when the stack has the registry's token (GHCR or Docker Hub).
    assert credentialed == (1 if PLANS[request.node.callspec.params["plan"]][1] else 0)


def test_a_credentialed_rule_is_created_after_its_secret_has_a_value():
    """ECR reads the secret as it creates the rule (CreatePullThroughCacheRule's
    UnableToAccessSecretException): the rule waits for the secret's version, not only its ARN."""
    plan = harness.run("production", overrides={"placement": "cluster", **GHCR})
    (rule,) = [r for r in plan.of_type(RULE) if r.inputs.get("credentialArn")]
    version = plan.one("aws:secretsmanager/secretVersion:SecretVersion", "images-github-credentials-value")
    assert plan.depends_transitively(rule.urn, version.urn)


def test_with_the_registry_credentials_every_image_comes_through_the_endpoints():
    plan = harness.run("production", overrides={"placement": "cluster", **GHCR})
    direct = [c["image"] for _, c in containers(plan) if not c["image"].startswith(f"{REGISTRY}/")]
    assert direct == [], direct


def test_an_image_ecr_cannot_cache_is_pulled_with_the_settings_credentials():
    plan = harness.run("staging", overrides={
        "placement": "cluster", "registry": {"server": "registry.example.com", "username": "deploy-bot"},
        "registryToken": harness.Secret("s3cret-token"), "images": {"api": "registry.example.com/sos/api:1.0.0"}})
    seen = 0
    for task, container in containers(plan):
        if container["image"] != "registry.example.com/sos/api:1.0.0":
            assert "repositoryCredentials" not in container
            continue
        seen += 1
        arn = container["repositoryCredentials"]["credentialsParameter"]
        assert granted(execution_policies(plan, task), "secretsmanager:GetSecretValue", arn), task.name
    assert seen == 2  # the API and its migrations


def test_without_the_cache_the_plan_pulls_from_docker_hub_through_the_nat(monkeypatch):
    """The check fails on the plan as it was before the cache: every official image direct."""
    monkeypatch.setattr(image_cache.ImageCache, "pull", lambda self, image: image_cache.ImagePull(image=image))
    plan = harness.run("production", overrides={"placement": "cluster"})
    anonymous = sorted({c["image"] for _, c in containers(plan) if from_docker_hub(c)})
    assert anonymous == ["nginx:1.28.0-alpine", "postgres:16.10-alpine"]
    from tools import policy as offline
    assert any(rule == "ecs-image-not-anonymous-docker-hub" for rule, _, _ in offline.violations(plan))
