"""n8n in queue mode as the cluster placement runs it, for real: the main process, the webhook
process and a worker of the pinned n8n, each with the environment of its task definition in the
plan, on PostgreSQL 16 over TLS and Redis 7 over TLS with an AUTH token (ElastiCache's shape). A
webhook taken by the webhook process is executed by the worker and answered."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from configs import n8n as n8n_config
from configs import postgres as pg
from testsupport import apps
from testsupport.plans import cluster_plan_for
from testsupport.servers import PgCluster, free_port, loopback_tls, official_first_boot, wait_for

N8N_PASSWORD = "n8n:queue@pass/word%1"
REDIS_TOKEN = "elasticache-shaped-auth-token-0123456789abcdef"
BROWSER = "sos-queue-test"
WEBHOOK_PATH = "queue-answer"


def _task_env(process: str) -> dict[str, str]:
    (container,) = json.loads(cluster_plan_for("staging").one(
        "aws:ecs/taskDefinition:TaskDefinition", f"{process}-task-definition").inputs["containerDefinitions"])
    assert {s["name"] for s in container["secrets"]} == {
        "DB_POSTGRESDB_PASSWORD", "N8N_ENCRYPTION_KEY", "QUEUE_BULL_REDIS_PASSWORD"}
    return {e["name"]: e["value"] for e in container["environment"]}


def _request(port: int, method: str, path: str, body: object | None = None,
             cookie: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "browser-id": BROWSER}
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    found = {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    return response.status, found, data


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    root = apps.n8n_root()
    work = tmp_path_factory.mktemp("n8n-queue")
    # For both PostgreSQL and Redis.
    pki = loopback_tls(work)
    started: list[apps.Process] = []
    database = PgCluster()
    try:
        secrets = work / "pg-secrets"
        secrets.mkdir()
        for key, name in pg.PASSWORD_FILES.items():
            (secrets / name).write_text(N8N_PASSWORD if key == "n8n" else f"{key}-queue-password")
        init = database.file("init.sql", pg.init_sql())
        first = official_first_boot(database, init, secrets, "superuser-queue-password")
        assert first.returncode == 0, first.stderr
        cert = database.file("server.crt", pki["cert"].read_text())
        key = database.file("server.key", pki["key"].read_text(), 0o600)
        database.start(conf=database.file("tls.conf", f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"))
        redis = apps.start_redis_tls(pki, REDIS_TOKEN, work)
        redis_port = redis.port
        started.append(redis)

        def run(process: str, argv: list[str], port: int, extra: dict[str, str]) -> apps.Process:
            home = work / process
            home.mkdir()
            env = {**_task_env(process), "DB_POSTGRESDB_HOST": "127.0.0.1", "DB_POSTGRESDB_PORT": str(database.port),
                   "QUEUE_BULL_REDIS_HOST": "127.0.0.1", "QUEUE_BULL_REDIS_PORT": str(redis_port),
                   "DB_POSTGRESDB_PASSWORD": N8N_PASSWORD, "N8N_ENCRYPTION_KEY": "queue-test-encryption-key",
                   "QUEUE_BULL_REDIS_PASSWORD": REDIS_TOKEN, "N8N_USER_FOLDER": str(home), "HOME": str(home),
                   "N8N_LISTEN_ADDRESS": "127.0.0.1", "NODE_EXTRA_CA_CERTS": str(pki["ca"]),
                   # Plain HTTP here (the edge ends TLS in front of n8n on the cluster too).
                   "N8N_SECURE_COOKIE": "false",
                   # Three processes on one machine (each task has its own network on Fargate).
                   "N8N_RUNNERS_BROKER_PORT": str(free_port()), **extra}
            proc = apps.Process(process, ["node", str(root / "node_modules" / "n8n" / "bin" / "n8n"), *argv],
                                env, port, root, ready_timeout=240)
            started.append(proc)
            return proc

        main_port = free_port()
        main = run("n8n", [], main_port, {"N8N_PORT": str(main_port)})
        yield {"main": main, "main_port": main_port, "run": run, "database": database}
    finally:
        for proc in reversed(started):
            proc.stop()
        database.destroy()


def _ready(port: int) -> bool:
    try:
        status, _, body = _request(port, "GET", "/")
        return status == 200 and body.lstrip().startswith(b"<!DOCTYPE html>")
    except OSError:
        return False


def test_a_webhook_is_taken_by_the_webhook_process_and_run_by_a_worker(queue):
    port = queue["main_port"]
    assert wait_for(lambda: _ready(port), 180), queue["main"].output()[-4000:]
    status, headers, body = _request(port, "POST", "/rest/owner/setup", {
        "email": "owner@example.com", "firstName": "Queue", "lastName": "Test", "password": "Queue-test-1234"})
    assert status == 200, body[:500]
    cookie = headers["set-cookie"].split(";", 1)[0]
    status, _, body = _request(port, "POST", "/rest/workflows", apps.answer_workflow("queue answer", WEBHOOK_PATH), cookie)
    assert status == 200, body[:500]
    created = json.loads(body)["data"]
    status, _, body = _request(port, "POST", f"/rest/workflows/{created['id']}/activate",
                               {"versionId": created["versionId"]}, cookie)
    assert status == 200, body[:500]

    webhook_port, health_port = free_port(), free_port()
    webhook = queue["run"]("n8n-webhook", ["webhook"], webhook_port, {"N8N_PORT": str(webhook_port)})
    worker = queue["run"]("n8n-worker", ["worker"], health_port, {"QUEUE_HEALTH_CHECK_PORT": str(health_port)})
    # The worker's health check, as its task definition asks it.
    assert _request(health_port, "GET", "/healthz")[0] == 200

    deadline = time.monotonic() + 60
    while True:
        status, _, body = _request(webhook_port, "POST", f"/webhook/{WEBHOOK_PATH}", {})
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(2)  # the webhook process registers the active workflow's webhooks as it starts
    assert status == 200, (body[:500], webhook.output()[-3000:])
    assert json.loads(body) == {"answer": 42}
    assert wait_for(lambda: "finished execution" in worker.output(), 30), worker.output()[-3000:]
    # The main process ran nothing itself: queue mode put it on Redis for the worker.
    assert "finished execution" not in queue["main"].output()
    # Every process spoke TLS to PostgreSQL (the server would accept plain connections too).
    sessions = queue["database"].query("SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                       f"WHERE a.usename = '{pg.N8N_ROLE}' AND NOT s.ssl")
    assert sessions == "0"
    assert n8n_config.queue_env("x")["QUEUE_BULL_REDIS_TLS"] == "true"
