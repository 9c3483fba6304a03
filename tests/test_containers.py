"""Every long-running container the program registers, on every stack, meets every default of
the hardened ContainerService unless it opted out by name; and the applications start in order."""

from __future__ import annotations

import re

import pytest

from components.container_service import LOG_OPTS, OPT_OUT_LABEL, OPT_OUTS
from offline import canned, harness
from offline.harness import Secret
from offline.harness import unwrap as harness_unwrap
from testsupport.plans import STACKS, container_env, container_files, plan_for
from testsupport.tools import ROOT

CONTAINER = "docker:index/container:Container"

# The whole list of opt-outs in the program: service -> opt-outs. Adding one means adding it
# here and in docs/architecture.md's table, with the reason from OPT_OUTS.
EXPECTED_OPT_OUTS = {
    "minio": {"runs-as-root", "publishes-port"},
    "nginx": {"publishes-port"},
    "node-exporter": {"reads-host"},
    "nginx-exporter": {"no-healthcheck"},
    "n8n": {"own-init"},
}


# Every long-running container of every stack, written out so that collecting the tests runs no
# program; the first test below holds the table to the plans.
_COMMON = ["postgres-svc", "redis-svc", "edge-svc", "n8n-svc", "backups-svc", "monitoring-node-exporter",
           "monitoring-prometheus", "monitoring-postgres-exporter", "monitoring-redis-exporter",
           "monitoring-nginx-exporter", "monitoring-grafana"]
CONTAINERS = {
    "dev": [*_COMMON, "storage-svc", "sos-dev-api-0", "sos-dev-frontend-0"],
    "staging": [*_COMMON, *[f"sos-staging-{s}-{i}" for s in ("api", "frontend") for i in (0, 1)]],
    "production": [*_COMMON, *[f"sos-production-api-{i}" for i in (0, 1, 2)],
                   *[f"sos-production-frontend-{i}" for i in (0, 1)]],
}
# Stateless services roll start-first under names Pulumi gives them; every other container has
# one fixed name (or a published port) and is replaced delete-first (README: Deploying).
ROLLING = {"api", "frontend"}


def containers():
    for stack in STACKS:
        for name in CONTAINERS[stack]:
            yield pytest.param(stack, name, id=f"{stack}-{name}")


@pytest.mark.parametrize("stack", STACKS)
def test_the_container_table_is_every_container_the_plan_registers(stack):
    assert sorted(CONTAINERS[stack]) == sorted(c.name for c in plan_for(stack).of_type(CONTAINER))


def labels(container) -> dict[str, str]:
    return {item["label"]: item["value"] for item in container.inputs["labels"]}


def opt_outs(container) -> set[str]:
    value = labels(container)[OPT_OUT_LABEL]
    return set(value.split(",")) if value else set()


@pytest.mark.parametrize("stack,name", list(containers()))
def test_container_meets_every_default_or_names_its_opt_out(stack, name):
    plan = plan_for(stack)
    c = plan.one(CONTAINER, name)
    i = c.inputs
    outs = opt_outs(c)
    service = labels(c)["service"]
    assert outs <= set(OPT_OUTS), f"unknown opt-out in {outs}"
    assert outs == EXPECTED_OPT_OUTS.get(service, set())

    # Image: pulled and pinned, and the container runs the pulled digest.
    # (The backup container runs PostgreSQL's image: found through the container's input.)
    (image,) = [r for r in plan.of_type("docker:index/remoteImage:RemoteImage")
                if r.urn in c.property_dependencies.get("image", [])]
    ref = image.inputs["name"]
    assert re.search(r":[\w][\w.-]*(@sha256:[0-9a-f]{64})?$", ref.rsplit("/", 1)[-1]) and not ref.endswith(":latest")
    assert i["image"].startswith("sha256:")
    assert image.inputs["keepLocally"] is True

    # Identity and filesystem.
    user = i.get("user")
    if "runs-as-root" in outs:
        assert not user or user.split(":")[0] in ("0", "root")
    else:
        assert user and user.split(":")[0] not in ("0", "root"), user
    assert i["readOnly"] is ("writable-rootfs" not in outs)
    # One init: Docker's, unless the image's entrypoint is one (n8n's tini).
    assert i["init"] is ("own-init" not in outs)
    assert i["capabilities"]["drops"] == ["ALL"]
    assert "no-new-privileges:true" in i["securityOpts"]

    # Limits.
    assert i["memory"] > 0 and i["memorySwap"] == i["memory"]
    assert float(i["cpus"]) > 0
    (pids,) = [cmd for cmd in plan.of_type("command:" + ("local" if stack == "dev" else "remote") + ":Command")
               if cmd.name.endswith("-pids") and c.urn in cmd.all_dependencies]
    assert re.fullmatch(r"docker update --pids-limit \d+ [0-9a-f]{64}", pids.inputs["create"])

    # Logs, restarts, labels.
    assert i["logDriver"] == "json-file" and i["logOpts"] == LOG_OPTS
    assert i["restart"] == "unless-stopped" and i["mustRun"] is True
    assert {"project", "stack", "service", "managed-by"} <= set(labels(c))

    # Health: probed with what the image has (no curl in node:*-alpine).
    if "no-healthcheck" in outs:
        assert not i.get("healthcheck")
    else:
        test = i["healthcheck"]["tests"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
        assert "curl" not in " ".join(test)
        assert i["wait"] is True

    # Networks and ports.
    for net in i["networksAdvanced"]:
        assert service in net["aliases"]
    if "publishes-port" in outs:
        assert i["ports"] and all(p.get("ip") for p in i["ports"])
    else:
        assert not i.get("ports")

    # Replacement: start-first under a name of Pulumi's for the rolling services, delete-first
    # under the one fixed name for all others (Docker refuses a second of that name or port).
    if service in ROLLING:
        assert not c.delete_before_replace and "name" not in i
        assert re.fullmatch(rf"sos-{stack}-{service}-\d+", c.name)
        assert int(i["stopTimeout"]) == int(i["destroyGraceSeconds"]) == 30
    else:
        assert c.delete_before_replace
        assert i["name"] == f"sos-{stack}-{service}" or re.fullmatch(rf"sos-{stack}-{service}-\d+", i["name"])


def test_the_opt_out_list_is_complete_and_documented():
    used = {}
    for stack in STACKS:
        for c in plan_for(stack).of_type(CONTAINER):
            if opt_outs(c):
                used.setdefault(labels(c)["service"], set()).update(opt_outs(c))
    assert used == EXPECTED_OPT_OUTS
    readme = (ROOT / "docs" / "architecture.md").read_text()
    for service, outs in used.items():
        for out in outs:
            assert f"| `{service}` | `{out}` |" in readme


@pytest.mark.parametrize("stack", STACKS)
def test_replicas_and_their_addresses(stack):
    plan = plan_for(stack)
    replicas = {"dev": (1, 1), "staging": (2, 2), "production": (3, 2)}[stack]
    for service, count in zip(("api", "frontend"), replicas, strict=True):
        found = [c for c in plan.of_type(CONTAINER) if labels(c)["service"] == service]
        assert len(found) == count
        aliases = {a for c in found for n in c.inputs["networksAdvanced"] for a in n["aliases"]}
        # Each replica addressable by the edge proxy, and all of them by the service name.
        assert {f"{service}-{k}" for k in range(count)} | {service} <= aliases


def test_production_refuses_a_single_api_replica():
    with pytest.raises(Exception, match="apiReplicas on stack production"):
        harness.run("production", overrides={"apiReplicas": 1})


# ------------------------------------------------------------------ order of creation

def _containers(plan, service):
    return [c for c in plan.of_type(CONTAINER) if labels(c)["service"] == service]


@pytest.mark.parametrize("stack", STACKS)
def test_applications_start_after_their_stores_are_healthy(stack):
    plan = plan_for(stack)
    postgres = _containers(plan, "postgres")[0]
    redis = _containers(plan, "redis")[0]
    assert postgres.inputs["wait"] is True and redis.inputs["wait"] is True
    migrate = plan.one("command:" + ("local" if stack == "dev" else "remote") + ":Command", "api-migrate-run")
    indexes = plan.one("command:" + ("local" if stack == "dev" else "remote") + ":Command", "api-indexes-run")
    assert plan.depends_transitively(migrate.urn, postgres.urn)
    assert plan.depends_transitively(migrate.urn, redis.urn)
    assert migrate.urn in indexes.all_dependencies
    for api in _containers(plan, "api"):
        assert plan.depends_transitively(api.urn, postgres.urn)
        assert plan.depends_transitively(api.urn, redis.urn)
        assert indexes.urn in api.depends_on and plan.depends_transitively(api.urn, migrate.urn)
    for n8n in _containers(plan, "n8n"):
        assert plan.depends_transitively(n8n.urn, postgres.urn)
    for front in _containers(plan, "frontend"):
        assert any(plan.depends_transitively(front.urn, a.urn) for a in _containers(plan, "api"))


def test_dependency_check_is_not_vacuous():
    plan = plan_for("dev")
    postgres = _containers(plan, "postgres")[0]
    api = _containers(plan, "api")[0]
    assert not plan.depends_transitively(postgres.urn, api.urn)


@pytest.mark.parametrize("stack", STACKS)
def test_migration_runs_again_when_the_api_image_changes(stack):
    plan = plan_for(stack)
    kind = "local" if stack == "dev" else "remote"
    migrate = plan.one(f"command:{kind}:Command", "api-migrate-run")
    image = plan.one("docker:index/remoteImage:RemoteImage", "api-migrate-image")
    assert image.inputs["name"] == plan.one("docker:index/remoteImage:RemoteImage", "api-svc-image").inputs["name"]
    assert image.urn in migrate.all_dependencies
    assert any(str(t).startswith("sha256:") for t in migrate.inputs["triggers"])
    assert "npx --no-install prisma migrate deploy" in migrate.inputs["create"]
    indexes = plan.one(f"command:{kind}:Command", "api-indexes-run")
    assert "posts_search_document" in indexes.inputs["create"]
    assert "ON_ERROR_STOP=1" in indexes.inputs["create"]


# ------------------------------------------------------------------ environments

def test_api_environment(plan):
    api = _containers(plan, "api")[0]
    assert isinstance(api.inputs["envs"], Secret), "it carries credentials, so the list is secret"
    env = container_env(api)
    for key in ("DATABASE_URL", "REDIS_URL", "JWT_ACCESS_SECRET", "JWT_REFRESH_SECRET", "S3_ENDPOINT",
                "AWS_REGION", "S3_BUCKET_CONTENT", "S3_BUCKET_IMAGES", "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY", "PORT"):
        assert env[key], key
    assert env["PORT"] == "3001"
    assert "SENDGRID_API_KEY" not in env, "external keys only when set"
    assert env["JWT_ACCESS_SECRET"] != env["JWT_REFRESH_SECRET"]


def test_api_gets_external_keys_when_they_are_set():
    plan = harness.run("staging", overrides={"sendgridApiKey": harness.Secret("SG.test-key-123456"),
                                             "stripeSecretKey": harness.Secret("sk_test_abcdefgh")})
    env = container_env(_containers(plan, "api")[0])
    assert env["SENDGRID_API_KEY"] == "SG.test-key-123456"
    assert env["STRIPE_SECRET_KEY"] == "sk_test_abcdefgh"
    assert "MEDIUM_API_TOKEN" not in env
    assert "SG.test-key-123456" in plan.secret_values


def test_frontend_environment(plan):
    for front in _containers(plan, "frontend"):
        env = container_env(front)
        assert env["HOSTNAME"] == "0.0.0.0"
        assert env["PORT"] == "3000"
        assert not [k for k in env if k.startswith("NEXT_PUBLIC_")], "build-time only; see README"
        assert "/api/health" in " ".join(front.inputs["healthcheck"]["tests"])


REMOVED_N8N_VARIABLES = re.compile(r"^(N8N_BASIC_AUTH_|N8N_JWT_AUTH_|N8N_USER_MANAGEMENT_DISABLED)")


def test_n8n_environment_and_data(plan):
    (n8n,) = _containers(plan, "n8n")
    env = container_env(n8n)
    domain = {"dev": "localhost", "staging": "staging.storiesofsoftware.com",
              "production": "storiesofsoftware.com"}[plan.stack]
    assert env["N8N_HOST"] == f"n8n.{domain}"
    assert env["N8N_PROTOCOL"] == "https"
    assert env["WEBHOOK_URL"] == env["N8N_EDITOR_BASE_URL"] == f"https://n8n.{domain}/"
    assert env["DB_TYPE"] == "postgresdb" and env["DB_POSTGRESDB_USER"] == "n8n"
    assert env["DB_POSTGRESDB_DATABASE"] == "n8n" and env["DB_POSTGRESDB_HOST"] == "postgres"
    # The generated key itself (the mock's stand-in for that RandomPassword's result).
    assert env["N8N_ENCRYPTION_KEY"] == canned.mock_password("secrets-n8nEncryptionKey", 48, False)
    assert not [k for k in env if REMOVED_N8N_VARIABLES.match(k)]
    # Workflows cannot read the database password or the encryption key from the environment.
    assert env["N8N_BLOCK_ENV_ACCESS_IN_NODE"] == "true"
    # Nothing in the editor calls api.n8n.io, so its CSP stays 'self' (tests/test_e2e.py).
    assert env["N8N_DYNAMIC_BANNERS_ENABLED"] == env["N8N_TEMPLATES_ENABLED"] == "false"
    assert env["N8N_VERSION_NOTIFICATIONS_ENABLED"] == "false"
    assert re.fullmatch(r"ghcr.io/n8n-io/n8n:\d+\.\d+\.\d+", plan.one("docker:index/remoteImage:RemoteImage", "n8n-svc-image").inputs["name"])
    volume = plan.one("docker:index/volume:Volume", "n8n-data")
    assert volume.protect is (plan.stack == "production")
    key = plan.one("random:index/randomPassword:RandomPassword", "secrets-n8nEncryptionKey")
    assert key.protect is (plan.stack == "production")


def test_n8n_can_be_switched_off():
    plan = harness.run("dev", overrides={"features": {"n8n": False, "monitoring": True}})
    assert not _containers(plan, "n8n")


@pytest.mark.parametrize("stack", STACKS)
def test_private_registry_credentials_reach_the_docker_provider_as_a_secret(stack):
    overrides = {"registry": {"server": "ghcr.io", "username": "deploy-bot"},
                 "registryToken": harness.Secret("ghp_registrytoken123")}
    plan = harness.run(stack, overrides=overrides)
    auth = plan.one("pulumi:providers:docker").inputs["registryAuth"]
    assert isinstance(auth, Secret)
    assert '"address": "ghcr.io"' in auth.value and "ghp_registrytoken123" in auth.value
    assert "registryAuth" not in plan_for(stack).one("pulumi:providers:docker").inputs


@pytest.mark.parametrize("stack", STACKS)
def test_config_files_belong_to_the_container_user_and_no_container_has_uploads(stack):
    """The provider copies `uploads` as a tar to `/`, which the engine refuses on a read-only root
    filesystem (tests/test_docker_engine.py shows it), so files come in config volumes written
    before the container starts, owned by the container's uid and gid."""
    plan = plan_for(stack)
    for c in plan.of_type(CONTAINER):
        assert not c.inputs.get("uploads"), c.name
        uid, _, gid = (c.inputs.get("user") or "0").partition(":")
        for path, (f, _secret) in container_files(plan, c).items():
            assert (f.uid, f.gid) == (int(uid), int(gid or uid)), (c.name, path)




# What Go's time.Duration(n * time.Second).String() prints (read off Go's documentation and
# its tests: 0s, 1m0s, 1h0m0s, 1h2m3s), the form the provider stores after every read.
GO_FORMS = {"0s": "0s", "5s": "5s", "60s": "1m0s", "90s": "1m30s", "120s": "2m0s", "2m": "2m0s",
            "3600s": "1h0m0s", "1h2m3s": "1h2m3s", "3723s": "1h2m3s", "59s": "59s"}


@pytest.mark.parametrize(("given", "go"), sorted(GO_FORMS.items()))
def test_durations_are_written_as_the_provider_reads_them_back(given, go):
    from components.container_service import go_duration

    assert go_duration(given) == go


@pytest.mark.parametrize("stack", STACKS)
def test_every_healthcheck_duration_is_in_gos_form(stack):
    """Otherwise `pulumi preview` after a refresh shows a change on every container (the
    provider writes `Duration.String()` back: "2m0s" where the program said "120s")."""
    import re

    go_form = re.compile(r"^(?:[1-9]\d*h\d+m\d+s|[1-9]\d*m\d+s|\d+s)$")
    checks = [c.inputs["healthcheck"] for c in plan_for(stack).of_type(CONTAINER) if c.inputs.get("healthcheck")]
    assert checks
    for check in checks:
        for key in ("interval", "timeout", "startPeriod", "startInterval"):
            assert go_form.match(check[key]), (key, check[key])
    assert any(check["startPeriod"] == "2m0s" for check in checks)


def test_a_duration_go_cannot_read_is_refused():
    from components.container_service import go_duration

    for bad in ("", "1.5s", "10ms", "two minutes"):
        with pytest.raises(ValueError, match="duration"):
            go_duration(bad)


@pytest.mark.parametrize("stack", STACKS)
def test_every_image_has_an_hour_to_pull_or_build(stack):
    """The provider gives an image 20 minutes unless told otherwise; a first `up` pulls and
    builds about 3 GB."""
    images = plan_for(stack).of_type("docker:index/remoteImage:RemoteImage")
    assert images
    for image in images:
        assert image.custom_timeouts == {"create": "60m", "update": "60m"}, image.name


@pytest.mark.parametrize("docker_host", ["", "ssh://dev@build-box"])
def test_the_provider_and_the_docker_cli_reach_one_engine(docker_host):
    """Left alone, the provider dials DOCKER_HOST or the default socket while the CLI of the
    one-shot tasks follows its current context: two engines on a machine with Docker Desktop,
    Colima or OrbStack beside another. One endpoint is resolved and given to both."""
    from offline import harness

    plan = harness.run("dev", overrides={"dockerHost": docker_host}) if docker_host else plan_for("dev")
    (provider,) = plan.of_type("pulumi:providers:docker")
    expected = docker_host or "unix:///var/run/docker.sock"  # the CLI's answer, canned offline
    assert provider.inputs["host"] == expected
    commands = plan.of_type("command:local:Command")
    assert commands
    for c in commands:
        assert c.inputs["environment"]["DOCKER_HOST"] == expected, c.name
    asked = [args for token, args in plan.invokes if token == "command:local:run"
             and args.get("command", "").startswith("docker context inspect")]
    assert len(asked) == (0 if docker_host else 1)


def test_the_endpoint_question_is_answered_by_the_real_cli_as_the_cli_itself_would_choose(tmp_path):
    """The command the program asks (components/local_docker_host.py) against the real docker
    CLI: its current context when nothing is set, DOCKER_HOST over any context; a TLS context, or
    DOCKER_HOST beside DOCKER_CONTEXT (which the provider and the CLI rank differently), refused
    with the setting that fixes it."""
    import os
    import subprocess

    from components.local_docker_host import CLI_ENDPOINT, endpoint_from
    from testsupport.tools import require_tool

    cli = require_tool("docker")
    openssl = require_tool("openssl")
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(tmp_path)

    def cli_run(*args: str) -> None:
        subprocess.run([cli, *args], env=env, check=True, capture_output=True)

    cli_run("context", "create", "colima", "--docker", "host=unix:///tmp/colima.sock")
    cli_run("context", "use", "colima")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-subj", "/CN=engine", "-days", "1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    cli_run("context", "create", "remote-tls", "--docker",
            f"host=tcp://engine.example:2376,ca={cert},cert={cert},key={key}")

    def ask(**extra: str) -> str:
        out = subprocess.run(["/bin/sh", "-c", CLI_ENDPOINT], env={**env, **extra}, capture_output=True,
                             text=True, check=True).stdout
        return endpoint_from(out, "dev")

    assert ask() == "unix:///tmp/colima.sock"
    assert ask(DOCKER_HOST="unix:///tmp/engine.sock") == "unix:///tmp/engine.sock"
    with pytest.raises(ValueError, match="storiesofsoftware:dockerHost on stack dev: .*tcp://engine.example:2376.*TLS"):
        ask(DOCKER_CONTEXT="remote-tls")
    with pytest.raises(ValueError, match="DOCKER_HOST and DOCKER_CONTEXT are both set"):
        ask(DOCKER_HOST="unix:///tmp/engine.sock", DOCKER_CONTEXT="colima")


@pytest.mark.parametrize("stack", STACKS)
def test_a_host_bind_is_rslave_only_on_the_ec2_host(stack):
    """`rslave` needs `/` to be a shared or slave mount: true on Ubuntu (systemd), refused on Docker
    Desktop, WSL2 and rootless Docker (tests/test_docker_engine.py shows the refusal), where dev
    must still come up."""
    binds = [m for c in plan_for(stack).of_type(CONTAINER) for m in c.inputs.get("mounts") or []
             if m["type"] == "bind"]
    assert binds
    for bind in binds:
        assert bind["readOnly"] is True
        propagation = (bind.get("bindOptions") or {}).get("propagation")
        assert propagation == (None if stack == "dev" else "rslave")


@pytest.mark.parametrize("stack", STACKS)
def test_a_config_volume_is_written_once(stack):
    """A writer runs when its volume is new (its trigger); a changed script alone (a new service
    image) runs nothing, so no file is rewritten under a running container."""
    from tools.plan import WRITE_FILES_MARK

    plan = plan_for(stack)
    writers = [r for r in plan.resources if r.type.startswith("command:")
               and WRITE_FILES_MARK in str(harness_unwrap(r.inputs.get("create")))]
    volumes = {harness_unwrap(v.inputs["name"]) for v in plan.of_type("docker:index/volume:Volume")}
    assert writers
    for writer in writers:
        assert writer.inputs["update"] == ":"
        (trigger,) = harness_unwrap(writer.inputs["triggers"])
        assert trigger in volumes
