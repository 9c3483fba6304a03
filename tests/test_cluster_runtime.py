"""The cluster placement's moving parts, run for real: the edge's release unpacked by its
entrypoint under BusyBox and served by real nginx as the load balancer reaches it; the database
bootstrap's SQL run by a master user that is no superuser (as RDS's is) on PostgreSQL 16; the
one-off task runner against the ECS API's own shapes; n8n's queue-mode settings in n8n's code."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
from botocore.stub import Stubber

from configs import edge_release, scram
from configs import n8n as n8n_config
from configs import nginx as ng
from configs import postgres as pg
from configs.edge_config import API_LIMIT
from deploy import run_task
from services.database import SCRIPTS as CLUSTER_SCRIPTS
from testsupport.edge import Nginx, timed, within_limit
from testsupport.plans import cluster_plan_for
from testsupport.servers import PgCluster
from testsupport.tools import require_tool

DOMAIN = "staging.storiesofsoftware.com"


def _container(plan, task: str) -> dict:
    (container,) = json.loads(plan.one("aws:ecs/taskDefinition:TaskDefinition", f"{task}-task-definition")
                              .inputs["containerDefinitions"])
    return container


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["environment"]}


# ------------------------------------------------------------------------------ the edge

@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    """The edge task's command, run by BusyBox's sh with the task's environment, up to the exec
    of nginx (a stand-in on PATH records how it was called)."""
    busybox = require_tool("busybox")
    work = tmp_path_factory.mktemp("edge-task")
    bin_dir = work / "bin"
    bin_dir.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in ("sh", "rm", "mkdir", "base64", "tar", "gzip", "printf"):
        assert applet in applets, applet
        (bin_dir / applet).symlink_to(busybox)
    (bin_dir / "nginx").write_text(f'#!{busybox} sh\nprintf "%s\\n" "$@" > {work}/nginx-args\n')
    (bin_dir / "nginx").chmod(0o755)
    container = _container(cluster_plan_for("staging"), "edge")
    assert container["command"][:2] == ["sh", "-c"]
    env = {"PATH": str(bin_dir), **_env(container), "SOS_EDGE_DIR": str(work / "edge"),
           "SOS_EDGE_CACHE": str(work / "cache")}
    result = subprocess.run([str(bin_dir / "sh"), "-c", container["command"][2]], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return work


def test_the_entrypoint_unpacks_the_release_and_runs_nginx_on_it(unpacked):
    args = (unpacked / "nginx-args").read_text().splitlines()
    assert args == ["-c", str(unpacked / "edge" / "nginx.conf"), "-g", "daemon off;"]
    assert sorted(p.name for p in (unpacked / "edge").iterdir()) == ["nginx.conf", "release.conf"]
    assert (unpacked / "cache").is_dir()
    conf = (unpacked / "edge" / "nginx.conf").read_text()
    release_id = re.search(r'default "([0-9a-f]{12})"', (unpacked / "edge" / "release.conf").read_text()).group(1)
    assert release_id == hashlib.sha256(conf.encode()).hexdigest()[:12]


def test_a_corrupt_release_stops_the_task_before_nginx(tmp_path):
    busybox = require_tool("busybox")
    script = edge_release.cluster_entrypoint()
    env = {"PATH": os.environ["PATH"], "SOS_EDGE_DIR": str(tmp_path / "edge"), "SOS_EDGE_CACHE": str(tmp_path / "c"),
           edge_release.CLUSTER_RELEASE_VARIABLE: base64.b64encode(b"not a tar").decode()}
    result = subprocess.run([busybox, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0


@pytest.fixture(scope="module")
def edge(unpacked):
    """The unpacked configuration in real nginx; loopback plays the load balancer (its address
    is added to the VPC range the edge believes)."""
    server = Nginx((unpacked / "edge" / "nginx.conf").read_text(), DOMAIN, extra_real_ip=["127.0.0.1/32"])
    checked = server.test_config()
    assert checked.returncode == 0, checked.stderr
    server.start()
    yield server
    server.stop()


def test_every_host_sends_the_security_headers_over_the_load_balancer_s_http(edge):
    for host, path in ((DOMAIN, "/"), (f"api.{DOMAIN}", "/v1/posts"), (f"n8n.{DOMAIN}", "/webhook/x")):
        response = edge.http(host, path, headers={"CF-Connecting-IP": "198.51.100.7"})
        headers = {k.lower(): v for k, v in response.getheaders()}
        assert response.status == 200, (host, response.status)
        assert headers["strict-transport-security"].startswith("max-age=63072000")
        assert headers["x-content-type-options"] == "nosniff" and "content-security-policy" in headers
        assert "x-powered-by" not in headers and headers["server"] == "nginx"


def test_an_unknown_host_gets_no_site(edge):
    before = {name: dict(s.hits) for name, s in edge.stand_ins.items()}
    assert edge.http("evil.example", "/").status == 421
    assert {name: dict(s.hits) for name, s in edge.stand_ins.items()} == before


def test_the_load_balancer_s_health_check_is_answered_with_the_release(edge):
    response = edge.http("10.44.16.5", ng.HEALTH_PATH, port=ng.HEALTH_PORT)
    # The release's id (the test's remapped release here; the unpacked one is checked above).
    assert response.status == 200 and response.body == b"remapped"


def test_webhooks_go_to_the_webhook_processes_and_the_editor_to_the_main_one(edge):
    hook = edge.http(f"n8n.{DOMAIN}", "/webhook/7f3a/order", method="POST")
    assert hook.status == 200 and hook.getheader("X-Stand-In") == ng.N8N_WEBHOOKS
    # The editor: admin networks only (the client as Cloudflare reports it).
    admin = edge.http(f"n8n.{DOMAIN}", "/home/workflows", headers={"CF-Connecting-IP": "198.51.100.7"})
    outsider = edge.http(f"n8n.{DOMAIN}", "/home/workflows", headers={"CF-Connecting-IP": "203.0.113.9"})
    assert admin.status == 200 and admin.getheader("X-Stand-In") == "n8n"
    assert outsider.status == 403


def test_the_client_address_is_cloudflare_s_header_and_limits_count_per_client(edge):
    edge.http(f"api.{DOMAIN}", "/who", headers={"CF-Connecting-IP": "203.0.113.9", "X-Forwarded-For": "6.6.6.6"})
    seen = edge.stand_ins["api"].seen_headers[-1]
    assert seen["x-real-ip"] == "203.0.113.9" and seen["x-forwarded-for"] == "203.0.113.9"
    statuses, seconds = timed(lambda: edge.http_burst(f"api.{DOMAIN}", 60, headers={"CF-Connecting-IP": "203.0.113.50"}))
    assert within_limit(statuses, seconds, API_LIMIT), (seconds, statuses)
    fresh = edge.http(f"api.{DOMAIN}", "/fresh", headers={"CF-Connecting-IP": "203.0.113.51"})
    assert fresh.status == 200


def test_the_load_balancer_s_client_certificate_headers_stop_at_the_edge(edge):
    """The load balancer hands Cloudflare's client certificate on in five headers (the leaf
    alone about 1.5 KB, against Node's 16 KiB header limit); no application gets them."""
    sent = {name: "x" * 1500 if name.endswith("Leaf") else "value" for name in ng.LOAD_BALANCER_MTLS_HEADERS}
    response = edge.http(f"api.{DOMAIN}", "/mtls", headers={"CF-Connecting-IP": "203.0.113.60",
                                                            "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
                                                            **sent})
    assert response.status == 200
    seen = edge.stand_ins["api"].seen_headers[-1]
    assert not [name for name in sent if name.lower() in seen], seen
    # The trace id still reaches the application's logs.
    assert seen["x-amzn-trace-id"].startswith("Root=1-")


def test_static_assets_are_cached_in_the_task_s_writable_directory(edge):
    path = "/_next/static/chunks/cluster-1a2b.js"
    first, second = edge.http(DOMAIN, path), edge.http(DOMAIN, path)
    assert (first.getheader("X-Cache-Status"), second.getheader("X-Cache-Status")) == ("MISS", "HIT")
    assert edge.stand_ins["frontend"].hits[path] == 1
    assert second.getheader("Cache-Control") == "public, max-age=31536000, immutable"


# ------------------------------------------------------------------------------ the database bootstrap

@pytest.fixture(scope="module")
def rds_like():
    """PostgreSQL 16 with a master user as RDS makes it: no superuser; CREATEROLE, CREATEDB, and
    pg_monitor to give (rds_superuser's). The application database exists with
    pg_stat_statements already (the one extension here only a superuser may create; RDS lets its
    master)."""
    cluster = PgCluster()
    cluster.initdb("superuser-only-here")
    cluster.start()
    made = cluster.psql(stdin="CREATE ROLE sos_admin LOGIN CREATEROLE CREATEDB PASSWORD 'master-pw';\n"
                              "GRANT pg_monitor TO sos_admin WITH ADMIN OPTION;\n"
                              f"CREATE DATABASE {pg.APP_DATABASE} OWNER sos_admin;\n"
                              f"\\connect {pg.APP_DATABASE}\nCREATE EXTENSION pg_stat_statements;\n")
    assert made.returncode == 0, made.stderr
    yield cluster
    cluster.destroy()


def _bootstrap(cluster: PgCluster, sql: str, passwords: dict[str, str]) -> subprocess.CompletedProcess:
    """The bootstrap task's own shell script and SQL (from the plan), as the master user."""
    plan = cluster_plan_for("staging")
    container = _container(plan, "database-bootstrap")
    secrets_dir = Path(tempfile.mkdtemp(prefix="sos-bootstrap-"))
    script = container["command"][2].replace("| psql ", f"| {cluster.psql_bin} ", 1)
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": "sos_admin",
           "PGPASSWORD": "master-pw", "PGSSLMODE": "disable", "SOS_INIT_SQL": sql, "SOS_SECRETS_DIR": str(secrets_dir),
           **{f"SOS_{key.upper()}_VERIFIER": scram.scram_verifier(passwords[key], role) for key, role in pg.ROLES.items()}}
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def test_the_bootstrap_script_writes_the_files_the_sql_reads():
    script = _container(cluster_plan_for("staging"), "database-bootstrap")["command"][2]
    for key in ("app", "n8n", "monitoring"):
        assert f'"$SOS_{key.upper()}_VERIFIER" > "$dir/{pg.PASSWORD_FILES[key]}"' in script


@pytest.mark.parametrize("script", sorted(p.name for p in CLUSTER_SCRIPTS.glob("*.sh")))
def test_cluster_scripts_pass_shellcheck(script):
    tool = require_tool("shellcheck")
    result = subprocess.run([tool, str(CLUSTER_SCRIPTS / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


PASSWORDS = {"app": "app:pa@ss/w#rd%1", "n8n": "n8n-pass(word)&2", "monitoring": "mon=itor+3"}


def test_the_bootstrap_sets_up_roles_and_databases_as_a_master_who_is_no_superuser(rds_like):
    sql = _env(_container(cluster_plan_for("staging"), "database-bootstrap"))["SOS_INIT_SQL"]
    for attempt in (1, 2):
        result = _bootstrap(rds_like, sql, PASSWORDS)
        assert result.returncode == 0, (attempt, result.stderr)
    owners = dict(line.split("|") for line in rds_like.query(
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN ('storiesofsoftware', 'n8n')")
        .splitlines())
    assert owners == {pg.APP_DATABASE: pg.APP_ROLE, pg.N8N_DATABASE: pg.N8N_ROLE}
    # Each role logs in with its password over TCP (the verifier was computed right), a wrong one
    # is refused, and none is more than a login.
    assert rds_like.query("SELECT current_user", user=pg.APP_ROLE, password=PASSWORDS["app"], tcp=True,
                          db=pg.APP_DATABASE) == pg.APP_ROLE
    wrong = rds_like.psql("-c", "SELECT 1", user=pg.APP_ROLE, password=PASSWORDS["n8n"], tcp=True, db=pg.APP_DATABASE)
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert rds_like.query("SELECT count(*) FROM pg_roles WHERE rolname IN ('sos_app', 'n8n', 'sos_monitoring') "
                          "AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls)") == "0"
    extensions = rds_like.query("SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension", db=pg.APP_DATABASE)
    assert extensions == "pg_stat_statements,pg_trgm,plpgsql,unaccent,uuid-ossp"
    assert rds_like.query("SELECT pg_has_role('sos_monitoring', 'pg_monitor', 'USAGE')") == "t"


def test_the_host_s_superuser_sql_would_fail_under_rds_s_master(rds_like):
    """Shown able to fail: the host's first-boot SQL names what only a superuser may set."""
    result = _bootstrap(rds_like, pg.init_sql(), PASSWORDS)
    assert result.returncode != 0 and "permission denied to set parameter" in result.stderr


def test_the_statements_carry_verifiers_not_passwords(rds_like):
    """With statement logging on (as an auditor might turn it on), no password reaches the log."""
    rds_like.psql(stdin="ALTER SYSTEM SET log_statement = 'all';\nSELECT pg_reload_conf();\n")
    try:
        sql = _env(_container(cluster_plan_for("staging"), "database-bootstrap"))["SOS_INIT_SQL"]
        assert _bootstrap(rds_like, sql, PASSWORDS).returncode == 0
        log = rds_like.log.read_text()
        assert "ALTER ROLE" in log and "SCRAM-SHA-256$4096:" in log
        assert not [p for p in PASSWORDS.values() if p in log]
    finally:
        rds_like.psql(stdin="ALTER SYSTEM RESET log_statement;\nSELECT pg_reload_conf();\n")


def test_the_verifier_is_the_one_postgresql_computes(rds_like):
    """PostgreSQL hashes a password set in plain text with a salt of its own; the same password
    and salt through our function give the very same verifier."""
    password = "Pl41n-text/@:%#"
    rds_like.psql(stdin=f"SET password_encryption = 'scram-sha-256';\nCREATE ROLE scram_probe LOGIN PASSWORD '{password}';\n")
    stored = rds_like.query("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_probe'")
    iterations, salt = re.match(r"SCRAM-SHA-256\$(\d+):([^$]+)\$", stored).groups()
    assert scram.scram_with_salt(password, base64.b64decode(salt), int(iterations)) == stored
    assert scram.scram_with_salt(password + "x", base64.b64decode(salt), int(iterations)) != stored
    a = scram.scram_verifier(password, "r")
    assert a == scram.scram_verifier(password, "r") and a != scram.scram_verifier(password, "s")
    with pytest.raises(ValueError):
        scram.scram_verifier("pässword", "r")


# ------------------------------------------------------------------------------ the task runner

def _ecs():
    import boto3

    return boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


TASK = "arn:aws:ecs:us-east-1:123456789012:task/sos-staging/0123456789abcdef"
RUN = {"cluster": "sos-staging", "task_definition": "sos-staging-api-migrate:3", "container": "api-migrate",
       "subnets": ["subnet-a", "subnet-b"], "security_groups": ["sg-1"], "timeout": 60}


def _stubbed(stopped_containers: list[dict], polls: int = 1, stopped_reason: str = "Essential container exited"):
    ecs = _ecs()
    stub = Stubber(ecs)
    stub.add_response("run_task", {"tasks": [{"taskArn": TASK, "lastStatus": "PROVISIONING"}], "failures": []}, {
        "cluster": "sos-staging", "taskDefinition": "sos-staging-api-migrate:3", "launchType": "FARGATE", "count": 1,
        "startedBy": "pulumi-up", "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}}})
    for _ in range(polls):
        stub.add_response("describe_tasks", {"tasks": [{"taskArn": TASK, "lastStatus": "RUNNING"}]},
                          {"cluster": "sos-staging", "tasks": [TASK]})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": TASK, "lastStatus": "STOPPED",
                                                    "stoppedReason": stopped_reason,
                                                    "containers": stopped_containers}]},
                      {"cluster": "sos-staging", "tasks": [TASK]})
    return ecs, stub


def test_a_task_that_exits_0_passes():
    ecs, stub = _stubbed([{"name": "api-migrate", "exitCode": 0}], polls=2)
    with stub:
        code, message = run_task.run(ecs, **RUN, sleep=lambda s: None)
    stub.assert_no_pending_responses()
    assert code == 0 and "exited 0" in message


def test_a_failed_migration_fails_pulumi_up_with_the_reason():
    ecs, stub = _stubbed([{"name": "api-migrate", "exitCode": 1, "reason": ""}])
    with stub:
        code, message = run_task.run(ecs, **RUN, sleep=lambda s: None)
    assert code == 1 and "exited 1" in message and "Essential container exited" in message


def test_a_task_that_never_started_fails():
    ecs, stub = _stubbed([{"name": "api-migrate", "reason": "CannotPullContainerError: not found"}],
                         stopped_reason="Task failed to start")
    with stub:
        code, message = run_task.run(ecs, **RUN, sleep=lambda s: None)
    assert code == 1 and "CannotPullContainerError" in message


def test_ecs_refusing_the_task_fails():
    ecs = _ecs()
    stub = Stubber(ecs)
    stub.add_response("run_task", {"tasks": [], "failures": [{"arn": "x", "reason": "RESOURCE:ENI"}]})
    with stub:
        code, message = run_task.run(ecs, **RUN, sleep=lambda s: None)
    assert code == 1 and "RESOURCE:ENI" in message


def test_a_task_past_its_timeout_is_stopped_and_fails():
    ecs = _ecs()
    stub = Stubber(ecs)
    stub.add_response("run_task", {"tasks": [{"taskArn": TASK}], "failures": []})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": TASK, "lastStatus": "RUNNING"}]})
    stub.add_response("stop_task", {"task": {"taskArn": TASK}},
                      {"cluster": "sos-staging", "task": TASK, "reason": "pulumi up: timed out"})
    clock = iter([0.0, 61.0])
    with stub:
        code, message = run_task.run(ecs, **RUN, sleep=lambda s: None, clock=lambda: next(clock))
    stub.assert_no_pending_responses()
    assert code == 1 and "still RUNNING after 60 s; stopped" in message


def _one_run(stub, task: dict) -> None:
    stub.add_response("run_task", {"tasks": [{"taskArn": TASK, "lastStatus": "PROVISIONING"}], "failures": []})
    stub.add_response("describe_tasks", {"tasks": [{"taskArn": TASK, "lastStatus": "STOPPED", **task}]})


# What ECS reports for a task whose new execution role it could not use yet (IAM's delay).
NOT_STARTED = {"stopCode": "TaskFailedToStart", "stoppedReason": "ResourceInitializationError: unable to pull "
               "secrets or registry auth: ... AccessDeniedException: not authorized to perform "
               "secretsmanager:GetSecretValue", "containers": [{"name": "api-migrate"}]}


def test_a_task_that_never_started_for_iam_s_delay_runs_again():
    ecs = _ecs()
    stub = Stubber(ecs)
    _one_run(stub, NOT_STARTED)
    _one_run(stub, {"containers": [{"name": "api-migrate", "exitCode": 0}]})
    waited: list[float] = []
    with stub:
        code, message = run_task.run_retrying(ecs, **RUN, sleep=waited.append)
    stub.assert_no_pending_responses()
    assert code == 0 and "not started: again in 30 s" in message and "exited 0" in message
    assert waited == [30.0]


def test_a_migration_that_ran_and_failed_is_never_run_twice():
    ecs = _ecs()
    stub = Stubber(ecs)
    _one_run(stub, {"stopCode": "EssentialContainerExited",
                    "containers": [{"name": "api-migrate", "exitCode": 1, "reason": ""}]})
    with stub:
        code, message = run_task.run_retrying(ecs, **RUN, sleep=lambda s: None)
    stub.assert_no_pending_responses()
    assert code == 1 and "exited 1" in message


def test_a_task_that_never_starts_fails_after_the_last_wait():
    ecs = _ecs()
    stub = Stubber(ecs)
    for _ in range(len(run_task.RETRY_WAITS) + 1):
        _one_run(stub, NOT_STARTED)
    with stub:
        code, message = run_task.run_retrying(ecs, **RUN, sleep=lambda s: None)
    stub.assert_no_pending_responses()
    assert code == 1 and message.count("not started") == len(run_task.RETRY_WAITS)
    assert "ResourceInitializationError" in message


def test_the_command_line_fails_on_a_missing_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_task.main(["--region", "us-east-1"])
    assert exit_.value.code == 2


# ------------------------------------------------------------------------------ n8n's settings

def test_every_n8n_variable_we_set_is_one_n8n_reads():
    """Read from n8n's own code (the version the images pin, installed for the e2e tests): a
    variable n8n does not know would be ignored without a word."""
    from testsupport.apps import n8n_root

    root = n8n_root() / "node_modules"
    code = "\n".join(p.read_text(errors="replace") for d in ("n8n/dist", "@n8n/config/dist", "n8n-core/dist")
                     for p in (root / d).rglob("*.js"))
    names = {*n8n_config.n8n_env("https://n8n.example.com", "db"), *n8n_config.queue_env("redis"),
             "DB_POSTGRESDB_PASSWORD", "N8N_ENCRYPTION_KEY", "QUEUE_BULL_REDIS_PASSWORD"}
    # TZ is read by Node.js and the C library, not by n8n's code.
    names -= {"TZ"}
    unknown = {n for n in names if not re.search(rf"""['"]{n}['"]|\benv\.{n}\b""", code)}
    assert unknown == set()
    assert "'QUEUE_BULL_REDIS_SSL'" not in code, "shown able to fail: a plausible name n8n does not read"


def test_the_edge_release_round_trips():
    conf = "events {}\n"
    text = edge_release.cluster_release(conf)
    files = edge_release.cluster_unbundle(text)
    assert files["nginx.conf"].content == conf
    assert edge_release.cluster_release(conf) == text, "reproducible: an unchanged edge is no new revision"


def test_an_operator_s_run_overrides_the_command_and_environment():
    """The runbook's restore: the bootstrap task's definition (its network, its master
    credentials) with another command and a short-lived variable."""
    ecs = _ecs()
    stub = Stubber(ecs)
    stub.add_response("run_task", {"tasks": [], "failures": [{"reason": "stubbed"}]}, {
        "cluster": "c", "taskDefinition": "td", "launchType": "FARGATE", "count": 1, "startedBy": "operator",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["s"], "securityGroups": ["g"],
                                                         "assignPublicIp": "DISABLED"}},
        "overrides": {"containerOverrides": [{"name": "database-bootstrap", "command": ["sh", "-c", "pg_restore x"],
                                              "environment": [{"name": "DUMP_URL", "value": "https://x"}]}]}})
    with stub:
        code, _ = run_task.run(ecs, cluster="c", task_definition="td", container="database-bootstrap", subnets=["s"],
                               security_groups=["g"], timeout=5, command=["sh", "-c", "pg_restore x"],
                               environment={"DUMP_URL": "https://x"}, started_by="operator",
                               sleep=lambda s: None)
    stub.assert_no_pending_responses()
    assert code == 1


# ------------------------------------------------------------------------------ the switch's data move

@pytest.fixture(scope="module")
def host_dumps(tmp_path_factory) -> Path:
    """What the host's logical-dump job makes (`pg_dump --format=custom` per database) of a
    host initialised by its own first-boot SQL, with rows in both databases. PostgreSQL 15 here:
    the machine's client tools are 15, and a dump's tools must be at least the server's."""
    from testsupport.servers import debian_pg_bin, official_first_boot

    work = tmp_path_factory.mktemp("host-dumps")
    secrets = work / "secrets"
    secrets.mkdir()
    for key, file in pg.PASSWORD_FILES.items():
        (secrets / file).write_text(f"host-{key}")
    host = PgCluster(debian_pg_bin(15))
    init = host.file("init.sql", pg.init_sql())
    assert official_first_boot(host, init, secrets, "host-superuser").returncode == 0
    host.start()
    try:
        made = host.psql(db=pg.APP_DATABASE, user=pg.APP_ROLE, stdin=(
            "CREATE TABLE posts (id int PRIMARY KEY, title text);\n"
            "INSERT INTO posts VALUES (1, 'Ship it'), (2, 'Día de datos');\n"))
        assert made.returncode == 0, made.stderr
        made = host.psql(db=pg.N8N_DATABASE, user=pg.N8N_ROLE, stdin=(
            "CREATE TABLE workflow_entity (id text PRIMARY KEY, name text);\n"
            "INSERT INTO workflow_entity VALUES ('w1', 'newsletter');\n"))
        assert made.returncode == 0, made.stderr
        for db in (pg.APP_DATABASE, pg.N8N_DATABASE):
            dumped = subprocess.run([require_tool("pg_dump"), "--format=custom", f"--file={work}/{db}.dump",
                                     f"--dbname={db}", "--host", str(host.sock), "--port", str(host.port),
                                     "--username", "postgres"], capture_output=True, text=True, timeout=60)
            assert dumped.returncode == 0, dumped.stderr
    finally:
        host.destroy()
    return work


def test_the_host_s_dump_moves_into_the_managed_database(rds_like, host_dumps, tmp_path):
    """The runbook's step 4: configs/cluster_scripts/restore-managed.sh, with BusyBox's wget
    fetching the dump over HTTP as it would the presigned URL, into the database the bootstrap
    and the API's migration (an empty `posts`) made."""
    import functools
    import http.server
    import threading

    assert _bootstrap(rds_like, _env(_container(cluster_plan_for("staging"), "database-bootstrap"))["SOS_INIT_SQL"],
                      PASSWORDS).returncode == 0
    migrated = rds_like.psql(db=pg.APP_DATABASE, user=pg.APP_ROLE, password=PASSWORDS["app"], tcp=True,
                             stdin="CREATE TABLE IF NOT EXISTS posts (id int PRIMARY KEY, title text);\n")
    assert migrated.returncode == 0, migrated.stderr
    busybox = require_tool("busybox")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "wget").symlink_to(busybox)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(host_dumps)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        script = (CLUSTER_SCRIPTS / "restore-managed.sh").read_text()
        for db, role in ((pg.APP_DATABASE, pg.APP_ROLE), (pg.N8N_DATABASE, pg.N8N_ROLE)):
            env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PGHOST": "127.0.0.1", "PGPORT": str(rds_like.port),
                   "PGUSER": "sos_admin", "PGPASSWORD": "master-pw", "DB": db, "ROLE": role,
                   "DUMP_URL": f"http://127.0.0.1:{server.server_address[1]}/{db}.dump",
                   "SOS_DUMP_FILE": str(tmp_path / f"{db}.dump")}
            result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            assert f"restored {db} as {role}" in result.stdout
    finally:
        server.shutdown()
    as_app = {"user": pg.APP_ROLE, "password": PASSWORDS["app"], "tcp": True, "db": pg.APP_DATABASE}
    assert rds_like.query("SELECT string_agg(title, ',' ORDER BY id) FROM posts", **as_app) == "Ship it,Día de datos"
    assert rds_like.query("SELECT tableowner FROM pg_tables WHERE tablename = 'posts'") == ""  # other database
    assert rds_like.query("SELECT tableowner FROM pg_tables WHERE tablename = 'posts'", db=pg.APP_DATABASE) == pg.APP_ROLE
    assert rds_like.query("SELECT name FROM workflow_entity", user=pg.N8N_ROLE, password=PASSWORDS["n8n"], tcp=True,
                          db=pg.N8N_DATABASE) == "newsletter"
    # The extensions are still the bootstrap's, and search still has its configuration.
    assert rds_like.query("SELECT count(*) FROM pg_extension WHERE extname IN ('pg_trgm', 'unaccent')",
                          db=pg.APP_DATABASE) == "2"


def test_without_the_extension_filter_the_restore_stops(rds_like, host_dumps, tmp_path):
    """Shown able to fail: restoring every entry, the role may not drop the master's extensions."""
    sql = _env(_container(cluster_plan_for("staging"), "database-bootstrap"))["SOS_INIT_SQL"]
    assert _bootstrap(rds_like, sql, PASSWORDS).returncode == 0
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(rds_like.port), "PGUSER": "sos_admin",
           "PGPASSWORD": "master-pw"}
    result = subprocess.run([require_tool("pg_restore"), "--clean", "--if-exists", "--no-owner",
                             f"--role={pg.APP_ROLE}", "--exit-on-error", f"--dbname={pg.APP_DATABASE}",
                             str(host_dumps / f"{pg.APP_DATABASE}.dump")], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "must be owner of extension" in result.stderr
