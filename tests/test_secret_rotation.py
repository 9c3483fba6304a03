"""Issue 28: every generated secret rotates, each by bumping `secretGenerations.<name>` and running
`pulumi up`, or by the runbook procedure around that bump (docs/security.md, Rotating secrets).

- the setting: names checked against the stack's placement, generations from 1;
- each rotation replayed in the engine's order (testsupport/rollout.plan_steps over the plans
  before and after the bump) on the host and on the cluster: which containers or ECS services
  restart (the table below, reasoned from who reads each secret, not read off the plans), and
  that the new value is in force before anything moves to it — PostgreSQL's roles re-applied
  before the API or n8n restart, ElastiCache's new token accepted before a task takes it, the
  tasks' secrets referenced by version so the services really roll;
- a rotation never touches PostgreSQL's container (its password files are on a volume of their
  own), and the secrets whose loss loses data are protected in production;
- the real PostgreSQL: the writer's and the roles' scripts, as the plan runs them, move every
  role to its new password; the old one is refused and the health check follows.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from configs import postgres as pg
from configs.secrets import BY_RUNBOOK, HOST_KEYS, SPECS, rotatable
from offline import harness
from settings import ConfigError
from testsupport.plans import service_of
from testsupport.rollout import plan_steps
from testsupport.servers import PgCluster, official_first_boot
from testsupport.tools import ROOT

CONTAINER = "docker:index/container:Container"
ECS_SERVICE = "aws:ecs/service:Service"

# Who reads each secret, so who restarts when it changes. Docker: the services whose containers
# are replaced (API replicas count as "api"); the cluster: its ECS services that roll.
HOST_RESTARTS: dict[str, set[str]] = {
    "postgresSuperuser": set(),  # only the roles step, through the socket
    "postgresApp": {"api"},
    "postgresN8n": {"n8n"},
    "postgresMonitoring": {"postgres-exporter"},
    # Redis's own container (its requirepass), the API and the exporter; n8n has no queue on one host.
    "redis": {"redis", "api", "redis-exporter"},
    "jwtAccess": {"api"},
    "jwtRefresh": {"api"},
    "grafanaAdmin": {"grafana"},
    "n8nEncryptionKey": {"n8n"},
    # archive_command (PostgreSQL's environment) and the backup jobs encrypt with it.
    "backupCipher": {"postgres", "backup"},
}
CLUSTER_RESTARTS: dict[str, set[str]] = {
    "postgresSuperuser": set(),  # RDS's master user is RDS's own
    "postgresApp": {"api"},
    "postgresN8n": {"n8n", "n8n-webhook", "n8n-worker"},
    "postgresMonitoring": set(),  # no exporter on the cluster; the bootstrap sets the role
    "redis": {"api", "n8n", "n8n-webhook", "n8n-worker"},
    "jwtAccess": {"api"},
    "jwtRefresh": {"api"},
    "grafanaAdmin": set(),
    "n8nEncryptionKey": {"n8n", "n8n-webhook", "n8n-worker"},
    "backupCipher": set(),
}


@functools.cache
def _plan(stack: str, placement: str, rotated: str = "") -> harness.Plan:
    overrides: dict = {} if placement == "host" or stack == "dev" else {"placement": placement}
    if rotated:
        overrides["secretGenerations"] = {rotated: 1}
    return harness.run(stack, overrides=overrides)


def _order(stack: str, placement: str, rotated: str) -> list[tuple[str, harness.Registration]]:
    """(op, resource) of every step the bump makes, in the engine's order."""
    steps = [s for wave in plan_steps(_plan(stack, placement), _plan(stack, placement, rotated))
             for chain in wave for s in chain]
    return [(s.op, s.new or s.old) for s in steps if s.op != "delete-replaced"]


def _index(order: list, op: str, name: str) -> int:
    return next(i for i, (o, r) in enumerate(order) if o == op and r.name == name)


# ------------------------------------------------------------------------------ the setting

def test_every_secret_has_a_rotation_and_every_placement_names_its_own():
    assert set(HOST_RESTARTS) == set(CLUSTER_RESTARTS) == set(SPECS) - {"minioRoot"}
    assert set(rotatable("host")) == set(SPECS) - {"minioRoot"} | set(HOST_KEYS)
    assert set(rotatable("cluster")) == set(SPECS) - {"minioRoot"}
    assert set(rotatable("local")) == set(SPECS)
    # Runbooks where a bare bump would lose data or the host.
    assert {n for n, how in rotatable("host").items() if how == BY_RUNBOOK} == \
        {"n8nEncryptionKey", "backupCipher", "sshClient", "sshHost"}


@pytest.mark.parametrize("stack,given,message", [
    ("staging", {"postgresApp": 0}, r"secretGenerations\.postgresApp on stack staging: expected an integer from 1"),
    ("staging", {"postgres": 1}, r"secretGenerations\.postgres on stack staging: expected a secret's name"),
    ("staging", {"minioRoot": 1}, r"secretGenerations\.minioRoot on stack staging: expected a secret this stack has"),
    ("dev", {"sshClient": 1}, r"secretGenerations\.sshClient on stack dev: expected a secret this stack has"),
    ("production", ["postgresApp"], r"secretGenerations on stack production: expected an object"),
])
def test_a_bad_generation_names_the_key_and_the_stack(stack, given, message):
    with pytest.raises(ConfigError, match=message):
        harness.run(stack, overrides={"secretGenerations": given})


def test_no_bump_no_change():
    """A stack that never rotated keeps every value: generation 0 has no keepers at all."""
    plan = _plan("production", "host")
    for password in plan.of_type("random:index/randomPassword:RandomPassword"):
        assert password.inputs.get("keepers") is None, password.name
    assert plan_steps(plan, harness.run("production", overrides={"secretGenerations": {}})) == []


# ------------------------------------------------------------------------------ the host

@pytest.mark.parametrize("name", sorted(HOST_RESTARTS))
def test_a_rotation_on_the_host_restarts_only_what_reads_the_secret(name):
    order = _order("staging", "host", name)
    assert ("create", f"secrets-{name}") in [(o, r.name) for o, r in order], "the secret itself is new"
    restarted = {service_of(r) for o, r in order if r.type == CONTAINER and o in ("create", "replace")}
    assert restarted == HOST_RESTARTS[name], name


@pytest.mark.parametrize("name,clients", [("postgresApp", "api"), ("postgresN8n", "n8n"),
                                          ("postgresMonitoring", "postgres-exporter")])
def test_a_role_has_its_new_password_before_its_client_restarts(name, clients):
    order = _order("staging", "host", name)
    written, applied = _index(order, "create", "postgres-secrets-writer-run"), _index(order, "create", "postgres-roles-run")
    movers = [i for i, (o, r) in enumerate(order) if r.type == CONTAINER and service_of(r) == clients]
    assert movers and written < applied < min(movers)
    # The roles step reads the files the writer wrote, over the server's socket, as the server's user.
    plan = _plan("staging", "host", name)
    roles = plan.one("command:remote:Command", "postgres-roles-run")
    script = harness.unwrap(roles.inputs["create"])
    assert f"--user {pg.IMAGE_USER}" in script and "postgres-socket" in script and "postgres-secrets" in script
    assert shlex.join(["-c", pg.apply_roles_script()]) in script


def test_postgres_keeps_running_through_every_password_rotation():
    for name in ("postgresSuperuser", "postgresApp", "postgresN8n", "postgresMonitoring"):
        order = _order("production", "host", name)
        assert not [r.name for o, r in order if r.type == CONTAINER and service_of(r) == "postgres"], name
    # Its files are on the secrets volume, none in its config: nothing in its inputs holds a password.
    postgres = next(c for c in _plan("production", "host").of_type(CONTAINER) if service_of(c) == "postgres")
    mounts = {m["target"]: m for m in postgres.inputs["mounts"]}
    assert mounts[pg.SECRETS_DIR]["readOnly"] is True and mounts[pg.SECRETS_DIR]["source"].endswith("postgres-secrets")


def test_grafana_is_told_its_new_password_after_its_new_container_starts():
    order = _order("staging", "host", "grafanaAdmin")
    grafana = _index(order, "create", "monitoring-grafana")
    reset = _index(order, "create", "monitoring-grafana-admin-password")
    assert grafana < reset
    command = _plan("staging", "host", "grafanaAdmin").one("command:remote:Command", "monitoring-grafana-admin-password")
    # From stdin, never a command line; run again for a new container or password.
    assert "reset-admin-password --password-from-stdin" in harness.unwrap(command.inputs["create"])
    assert isinstance(command.inputs["stdin"], harness.Secret)


def test_the_irreplaceable_secrets_are_protected_in_production_so_a_bare_bump_is_refused():
    plan = _plan("production", "host")
    for password in plan.of_type("random:index/randomPassword:RandomPassword"):
        name = password.name.removeprefix("secrets-")
        assert password.protect is SPECS[name].irreplaceable, name


@pytest.mark.parametrize("key", sorted(HOST_KEYS))
def test_a_new_ssh_key_is_a_new_host(key):
    """Both keys reach the instance in its user data, and new user data is a new instance: the
    runbook's maintenance window. Generation 0 is a trigger too (a first trigger replaces nothing)."""
    resource = {"sshClient": "host-ssh-client", "sshHost": "host-ssh-host"}[key]
    before, after = _plan("production", "host"), _plan("production", "host", key)
    assert before.one("tls:index/privateKey:PrivateKey", resource).replacement_trigger == "0"
    # Replaced: the new key is made, the old one deleted at the end.
    assert [(o, r.name) for o, r in _order("production", "host", key)] == [("create", resource)]
    instance = after.one("aws:ec2/instance:Instance", "host-instance")
    assert after.one("tls:index/privateKey:PrivateKey", resource).urn in instance.property_dependencies["userData"]
    assert instance.inputs["userDataReplaceOnChange"] is True


# ------------------------------------------------------------------------------ the cluster

@pytest.mark.parametrize("name", sorted(CLUSTER_RESTARTS))
def test_a_rotation_on_the_cluster_rolls_only_the_services_that_read_it(name):
    order = _order("staging", "cluster", name)
    rolled = {r.name.removesuffix("-service") for o, r in order if r.type == ECS_SERVICE}
    assert rolled == CLUSTER_RESTARTS[name], name


@pytest.mark.parametrize("name,services", [("postgresApp", ["api-service"]),
                                           ("postgresN8n", ["n8n-service", "n8n-webhook-service", "n8n-worker-service"])])
def test_on_the_cluster_the_role_changes_before_its_services_roll(name, services):
    order = _order("staging", "cluster", name)
    bootstrap = _index(order, "create", "database-bootstrap-run")
    assert all(bootstrap < _index(order, "update", s) for s in services)


def test_elasticache_accepts_the_new_token_before_any_task_takes_it():
    order = _order("staging", "cluster", "redis")
    group = _index(order, "update", "redis-group")
    takers = [i for i, (o, r) in enumerate(order) if r.name.endswith("-secrets-value")]
    assert takers and group < min(takers)
    # ROTATE: the old token stays valid while the old tasks run.
    plan = _plan("staging", "cluster", "redis")
    assert plan.one("aws:elasticache/replicationGroup:ReplicationGroup", "redis-group").inputs[
        "authTokenUpdateStrategy"] == "ROTATE"


def test_a_task_names_the_version_of_its_secret():
    """ECS reads a secret as a task starts: a reference without a version would leave the running
    tasks on the old value and the task definition unchanged, so nothing would roll."""
    plan = _plan("staging", "cluster")
    versions = {plan.states[r.urn][1]["versionId"] for r in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    for task in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        for container in json.loads(harness.unwrap(task.inputs["containerDefinitions"])):
            for secret in container.get("secrets", []):
                if ":secret:" in secret["valueFrom"] and not secret["valueFrom"].endswith("::"):
                    assert secret["valueFrom"].rsplit(":", 1)[1] in versions, secret
                else:
                    # RDS's own master secret, rotated by RDS: referenced as current.
                    assert "rds!" in secret["valueFrom"] or secret["name"].startswith("PG"), secret


# ------------------------------------------------------------------------------ the real PostgreSQL

def _write(secrets: Path, passwords: dict[str, str]) -> None:
    """The writer's script as the task runs it, the owner being this user (no CAP_CHOWN here)."""
    env = {"PATH": os.environ["PATH"], "SOS_SECRETS_DIR": str(secrets), "SOS_SECRETS_OWNER": f"{os.getuid()}:{os.getgid()}",
           "SOS_PG_SUPERUSER": passwords["superuser"], "SOS_PG_APP": passwords["app"],
           "SOS_PG_N8N": passwords["n8n"], "SOS_PG_MONITORING": passwords["monitoring"],
           "SOS_PG_HEALTH": pg.pgpass_line(passwords["app"]).rstrip("\n")}
    result = subprocess.run(["sh", "-c", pg.write_secrets_script()], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.real_tools
def test_the_real_postgres_moves_every_role_to_its_new_password(tmp_path):
    old = {"superuser": "su:old@pw/%1", "app": "a:old@pw/%?#&=+", "n8n": "n:old@pw/%", "monitoring": "m:old@pw/%"}
    new = {key: value.replace("old", "new") for key, value in old.items()}
    roles = {"superuser": pg.SUPERUSER, "app": pg.APP_ROLE, "n8n": pg.N8N_ROLE, "monitoring": pg.MONITORING_ROLE}
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    _write(secrets, old)
    assert oct((secrets / pg.PASSWORD_FILES["app"]).stat().st_mode & 0o777) == "0o400"
    cluster = PgCluster()
    try:
        init_sql = cluster.file("init.sql", pg.init_sql())
        assert official_first_boot(cluster, init_sql, secrets, old["superuser"]).returncode == 0
        cluster.start()

        def login(key: str, password: str) -> bool:
            database = {"app": pg.APP_DATABASE, "n8n": pg.N8N_DATABASE}.get(key, pg.APP_DATABASE)
            return cluster.psql("-tAc", "SELECT 1", db=database, user=roles[key], password=password,
                                tcp=True).returncode == 0

        def healthy() -> bool:
            argv = pg.healthcheck(port=cluster.port, passfile=str(secrets / pg.HEALTH_PASSFILE))
            return subprocess.run([cluster.psql_bin, *argv[2:]], capture_output=True).returncode == 0

        assert all(login(key, old[key]) for key in roles) and healthy()
        # The rotation: the files first, then the roles over the socket.
        _write(secrets, new)
        script = pg.apply_roles_script(socket_dir=str(cluster.sock))
        env = {**os.environ, "PATH": f"{Path(cluster.psql_bin).parent}:{os.environ['PATH']}",
               "PGPORT": str(cluster.port), "SOS_SECRETS_DIR": str(secrets)}
        applied = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        assert applied.returncode == 0, applied.stderr
        for key in roles:
            assert login(key, new[key]), key
            assert not login(key, old[key]), f"{key}: the old password still works"
        assert healthy()
        # Nothing the roles step printed or logged holds a password.
        for text in (applied.stdout, applied.stderr, cluster.log.read_text()):
            assert not any(value in text for value in (*old.values(), *new.values()))
    finally:
        cluster.destroy()


def test_the_docs_give_every_secret_its_rotation():
    page = (ROOT / "docs" / "security.md").read_text()
    section = page.split("## Rotating secrets", 1)[1].split("\n## ", 1)[0]
    for name in [*SPECS, *HOST_KEYS, "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_API_TOKEN_READ"]:
        assert f"`{name}`" in section, name
    assert "| Pulumi |" in section


def test_the_cloudflare_token_is_in_no_resource():
    """It reaches the provider from the workflow's environment only: a new token changes nothing."""
    plan = _plan("production", "host")
    provider = plan.one("pulumi:providers:cloudflare", "cloudflare")
    assert not {"apiToken", "apiKey", "apiUserServiceKey"} & set(provider.inputs)
