"""Issue 28: every generated secret rotates, each by bumping `secretGenerations.<name>` and running
`pulumi up`, or by its runbook procedure, which replaces it for one run (`pulumi up --replace`,
where a lasting setting could lose data: docs/security.md, Rotating secrets).

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
  role to its new password; the old one is refused and the health check follows;
- ElastiCache's previous token revoked (deploy/cache_token.py) against moto and botocore's model.
(n8n's key, with the real n8n: tests/test_n8n_key_rotation.py; on a real engine:
tests/test_dev_up.py.)
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
from configs.secrets import BY_GENERATION, BY_RUNBOOK, HOST_KEYS, SPECS, by_generation, rotatable
from offline import canned, harness
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


@functools.cache
def _replaced_plan(stack: str, placement: str, name: str) -> harness.Plan:
    """The plan of `pulumi up --replace <name>`: that resource's new value (mock values follow a
    resource's inputs, and --replace changes none of them)."""
    original = canned.mock_password

    def new_value(resource: str, *args: object) -> str:
        return original(f"{resource}/replaced" if resource == name else resource, *args)  # type: ignore[arg-type]

    canned.mock_password = new_value
    try:
        overrides: dict = {} if placement == "host" else {"placement": placement}
        return harness.run(stack, overrides=overrides)
    finally:
        canned.mock_password = original


def _order(stack: str, placement: str, rotated: str) -> list[tuple[str, harness.Registration]]:
    """(op, resource) of every step the bump (or, for a runbook's secret, `--replace`) makes, in
    the engine's order."""
    if rotatable(placement).get(rotated, BY_GENERATION) == BY_RUNBOOK:
        replaced = f"secrets-{rotated}" if rotated in SPECS else {"sshClient": "host-ssh-client",
                                                                   "sshHost": "host-ssh-host"}[rotated]
        waves = plan_steps(_plan(stack, placement), _replaced_plan(stack, placement, replaced), replace=[replaced])
    else:
        waves = plan_steps(_plan(stack, placement), _plan(stack, placement, rotated))
    return [(s.op, s.new or s.old) for wave in waves for chain in wave for s in chain if s.op != "delete-replaced"]


def _index(order: list, op: str, name: str) -> int:
    return next(i for i, (o, r) in enumerate(order) if o == op and r.name == name)


# ------------------------------------------------------------------------------ the setting

def test_every_secret_has_a_rotation_and_every_placement_names_its_own():
    assert set(HOST_RESTARTS) == set(CLUSTER_RESTARTS) == set(SPECS) - {"minioRoot"}
    assert set(rotatable("host")) == set(SPECS) - {"minioRoot"} | set(HOST_KEYS)
    assert set(rotatable("cluster")) == set(SPECS) - {"minioRoot"}
    assert set(rotatable("local")) == set(SPECS)
    # Runbooks where a lasting setting would lose data or the host.
    assert {n for n, how in rotatable("host").items() if how == BY_RUNBOOK} == \
        {"n8nEncryptionKey", "backupCipher", "sshClient", "sshHost"}
    assert set(by_generation("host")) == set(rotatable("host")) - {"n8nEncryptionKey", "backupCipher",
                                                                    "sshClient", "sshHost"}


@pytest.mark.parametrize("stack,given,message", [
    ("staging", {"postgresApp": 0}, r"secretGenerations\.postgresApp on stack staging: expected an integer from 1"),
    ("staging", {"postgres": 1}, r"secretGenerations\.postgres on stack staging: expected a secret's name"),
    ("staging", {"minioRoot": 1}, r"secretGenerations\.minioRoot on stack staging: expected a secret this stack has"),
    ("dev", {"sshClient": 1}, r"secretGenerations\.sshClient on stack dev: expected a secret this stack has"),
    # What a new value alone would break: its procedure instead.
    ("staging", {"backupCipher": 1}, r"secretGenerations\.backupCipher on stack staging: expected no generation"),
    ("dev", {"n8nEncryptionKey": 2}, r"secretGenerations\.n8nEncryptionKey on stack dev: expected no generation"),
    ("production", {"sshClient": 1}, r"secretGenerations\.sshClient on stack production: expected no generation"),
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
    assert [r.name for o, r in order if r.type == "random:index/randomPassword:RandomPassword"] == \
        [f"secrets-{name}"], "the secret itself is new, and no other"
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
    assert f"--user {pg.IMAGE_USER}" in script and "postgres-socket" in script
    # It reads the password files and writes none.
    assert f"src=sos-staging-postgres-secrets,dst={pg.SECRETS_DIR},readonly" in script
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


def test_the_irreplaceable_secrets_are_protected_in_production():
    plan = _plan("production", "host")
    for password in plan.of_type("random:index/randomPassword:RandomPassword"):
        name = password.name.removeprefix("secrets-")
        assert password.protect is SPECS[name].irreplaceable, name


@pytest.mark.parametrize("key", sorted(HOST_KEYS))
def test_a_new_ssh_key_is_a_new_host(key):
    """`pulumi up --replace` of a key: both reach the instance in its user data, and new user data
    is a new instance (the runbook's maintenance window). The mocks make no key material from
    inputs, so what follows the key is read off the graph: the instance's user data depends on it,
    and the client key is every remote command's connection."""
    resource = {"sshClient": "host-ssh-client", "sshHost": "host-ssh-host"}[key]
    plan = _plan("production", "host")
    assert ("create", resource) in [(o, r.name) for o, r in _order("production", "host", key)]
    instance = plan.one("aws:ec2/instance:Instance", "host-instance")
    assert plan.one("tls:index/privateKey:PrivateKey", resource).urn in instance.property_dependencies["userData"]
    assert instance.inputs["userDataReplaceOnChange"] is True
    if key == "sshClient":
        remote = plan.of_type("command:remote:Command")
        client = plan.one("tls:index/privateKey:PrivateKey", resource).urn
        assert remote and all(client in c.property_dependencies["connection"] for c in remote)


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
    # AWS's default strategy, ROTATE: the old token stays valid while the old tasks run (naming it
    # would make the first up after this change send the same token again).
    plan = _plan("staging", "cluster", "redis")
    assert "authTokenUpdateStrategy" not in plan.one("aws:elasticache/replicationGroup:ReplicationGroup",
                                                     "redis-group").inputs


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
        # The rotation: the files first (over what a run cut short left), then the roles over the socket.
        leftover = secrets / f".{pg.PASSWORD_FILES['app']}.tmp"
        leftover.write_text("half")
        leftover.chmod(0o400)
        _write(secrets, new)
        assert not leftover.exists()
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


# ------------------------------------------------------------------------------ ElastiCache's old token

def test_the_old_cache_token_is_revoked_by_setting_the_current_one(capsys):
    """deploy/cache_token.py against moto's ElastiCache, the calls checked against botocore's
    model: SET with the current token, applied at once, then waited for."""
    import io

    import boto3
    from botocore.stub import Stubber
    from moto import mock_aws

    from deploy import cache_token

    token = "N3wToken0123456789abcdefABCDEF"
    with mock_aws():
        client = boto3.client("elasticache", region_name="us-east-1")
        client.create_replication_group(
            ReplicationGroupId="sos-production-redis", ReplicationGroupDescription="d", Engine="redis",
            CacheNodeType="cache.t4g.small", NumCacheClusters=2, TransitEncryptionEnabled=True, AuthToken="0ld" * 8)
        assert cache_token.revoke_previous(client, "sos-production-redis", token, delay=1, attempts=2) == "available"
    # The request as AWS's model has it (Stubber validates each call's parameters).
    stubbed = boto3.client("elasticache", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(stubbed) as stub:
        group = {"ReplicationGroupId": "g", "Status": "available", "AuthTokenEnabled": True}
        stub.add_response("describe_replication_groups", {"ReplicationGroups": [group]}, {"ReplicationGroupId": "g"})
        stub.add_response("modify_replication_group", {"ReplicationGroup": group},
                          {"ReplicationGroupId": "g", "AuthToken": token, "AuthTokenUpdateStrategy": "SET",
                           "ApplyImmediately": True})
        stub.add_response("describe_replication_groups", {"ReplicationGroups": [group]}, {"ReplicationGroupId": "g"})
        cache_token.revoke_previous(stubbed, "g", token, delay=1, attempts=1)
        stub.assert_no_pending_responses()
        # A group still applying the rotation is not touched.
        stub.add_response("describe_replication_groups",
                          {"ReplicationGroups": [{**group, "Status": "modifying"}]}, {"ReplicationGroupId": "g"})
        with pytest.raises(ValueError, match="status modifying"):
            cache_token.revoke_previous(stubbed, "g", token)
    # The token comes on stdin only, checked before any call; nothing printed holds it.
    for bad in ("short", "has/slash" * 3, "x" * 129):
        assert cache_token.main(["--region", "us-east-1", "--group", "g"], stdin=io.StringIO(bad)) == 2
    assert token not in capsys.readouterr().err
