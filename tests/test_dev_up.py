"""dev's `pulumi up` on a real Docker engine, twice (issue 25).

The real program runs under testsupport/live.py's mocks, which do what the providers would on
Debian's dockerd as each resource registers: the images the stack pins are local stand-ins with
the real servers inside (testsupport/images.py says which), the project's PostgreSQL image is
built from its Dockerfile, every container is created with the provider's arguments and waited
for until healthy (`wait`), and every `command:local` step runs for real. Then the platform is
used from the host the way a developer does: through the edge on the published ports.
A second `up` deploys a new API image and a changed edge configuration.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from configs import backup, release
from configs import n8n as n8n_config
from configs import nginx as ng
from configs import postgres as pg
from configs.file_bundle import unbundle
from offline import harness
from settings.defaults import DEFAULT_IMAGES
from testsupport import engine, faults, live
from testsupport.plans import service_of
from testsupport.servers import wait_for

# The rollout drill's change (tests/test_rollout.py): a new API image, and an admin range more
# (the edge's allow lists change, nothing else).
SECOND_UP = {"images": {"api": "ghcr.io/storiesofsoftware/api:1.1.0"}, "adminCidrs": ["127.0.0.1/32", "10.1.0.0/16"]}


@pytest.fixture(scope="module")
def host():
    yield from live.dev_host()


@pytest.fixture(scope="module")
def first(host):
    started = time.monotonic()
    plan, deployment = live.up("dev", host, lambda inputs: live.stand_in(host, inputs))
    print(f"first up: {time.monotonic() - started:.0f} s, {len(deployment.steps)} steps")
    return plan, deployment


@pytest.fixture(scope="module")
def cert(first, tmp_path_factory) -> Path:
    """The stack's certificate, as the tls provider made it: what curl and the browser trust."""
    path = tmp_path_factory.mktemp("tls") / "dev.crt"
    path.write_text(live.certificate(first[1]))
    return path


def _containers(plan: harness.Plan, deployment: live.Deployment) -> dict[str, live.Applied]:
    return live.of_plan(plan, deployment, live.CONTAINER)


def _state(host: str, cid: str) -> dict:
    """The container's State, with the engine's restart count in it."""
    inspected = faults.inspect(host, cid)
    return {**inspected["State"], "RestartCount": inspected["RestartCount"]}


def fetch(cert: Path, name: str, path: str = "/", scheme: str = "https") -> tuple[int, dict[str, str], str]:
    """A request from the host to the published port, as a browser on the laptop makes it."""
    port = 443 if scheme == "https" else 80
    result = subprocess.run(["curl", "-sS", "--max-time", "20", "--resolve", f"{name}:{port}:127.0.0.1",
                             "--cacert", str(cert), "-D", "-", f"{scheme}://{name}{path}"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.replace("\r\n", "\n").partition("\n\n")
    status = int(head.split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.splitlines()[1:])}
    return status, headers, body


def test_every_container_runs_and_is_healthy(host, first):
    plan, deployment = first
    containers = _containers(plan, deployment)
    assert len(containers) == len(plan.of_type(live.CONTAINER))
    for name, applied in containers.items():
        state = _state(host, applied.id)
        assert state["Running"] and state["RestartCount"] == 0, (name, state)
        if applied.registration.inputs.get("healthcheck"):
            assert state["Health"]["Status"] == "healthy", (name, state["Health"]["Log"][-1:])


def test_the_edge_answers_on_the_published_ports(first, cert):
    status, headers, _ = fetch(cert, "localhost", "/", scheme="http")
    assert status in (301, 308) and headers["location"] == "https://localhost/"
    status, headers, body = fetch(cert, "localhost")
    assert status == 200 and "text/html" in headers["content-type"]
    assert "strict-transport-security" in headers and "content-security-policy" in headers


def test_the_site_api_and_n8n_answer_through_the_edge(first, cert):
    status, _, body = fetch(cert, "localhost")
    assert status == 200 and "/_next/static/" in body  # the Next.js production build
    status, _, body = fetch(cert, "api.localhost", "/v1/hello")
    assert status == 200 and json.loads(body) == {"hello": "world"}  # the Fastify API
    # The host's request reaches the edge from the edge network's gateway, which dev's n8n admits.
    status, _, body = fetch(cert, "n8n.localhost", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    # What n8n writes at start under its read-only root (configs/n8n.STATIC_CACHE_DIR), whole:
    # the editor's node types, which a full tmpfs cuts off while /healthz stays green.

def test_n8n_wrote_its_start_files_whole(host, first):
    """What n8n writes at start under its read-only root (configs/n8n.STATIC_CACHE_DIR), whole: the
    editor's node types, which a too small tmpfs cuts off while /healthz stays green."""
    nodes = f"{n8n_config.STATIC_CACHE_DIR}/n8n/public/types/nodes.json"
    count = engine.docker(host, "exec", "sos-dev-n8n", "node", "-e",
                          f"console.log(JSON.parse(require('fs').readFileSync('{nodes}')).length)", check=False)
    assert count.returncode == 0 and int(count.stdout) > 100, count.stderr[-2000:]
    assert "ENOSPC" not in engine.docker(host, "logs", "sos-dev-n8n").stderr


def _backup_exec(host: str, *command: str) -> subprocess.CompletedProcess[str]:
    return engine.docker(host, "exec", "sos-dev-backup", *command, check=False)


def _wait_for_jobs(host: str, jobs: set[str], timeout: float = 300) -> set[str]:
    """The scheduler's jobs that succeeded (its state files), waiting until `jobs` have."""
    deadline, done = time.monotonic() + timeout, set()
    while time.monotonic() < deadline and not jobs <= done:
        listing = _backup_exec(host, "ls", backup.STATE_DIR).stdout.split()
        done = {entry.removesuffix(".ok") for entry in listing if entry.endswith(".ok")}
        time.sleep(2)
    return done


def test_the_backup_job_takes_a_full_backup_and_a_logical_dump(host, first):
    """The scheduler's first tick, unattended: pgBackRest's full backup of PostgreSQL 16 through
    the socket volume, and the logical dump."""
    done = _wait_for_jobs(host, {"pgbackrest-full", "logical"})
    assert {"pgbackrest-full", "logical"} <= done, engine.docker(host, "logs", "sos-dev-backup", check=False).stdout
    info = json.loads(_backup_exec(host, "pgbackrest", "--config=/etc/sos/pgbackrest/pgbackrest.conf",
                                   "--stanza=main", "info", "--output=json").stdout)
    assert [b["type"] for b in info[0]["backup"]][:1] == ["full"]


def test_the_backup_job_takes_a_redis_snapshot(host, first):
    """Redis writes dump.rdb at its first save point (900 s after a first write on dev), so the
    scheduler's first try finds none and retries; here Redis saves now and the job's own
    command runs in the backup container, with the volumes and user the plan gives it."""
    auth = 'REDISCLI_AUTH="$(cat /etc/sos/secrets/redis-password)" redis-cli --no-auth-warning'
    saved = engine.docker(host, "exec", "sos-dev-redis", "sh", "-c", f"{auth} SET sos-probe 1 && {auth} SAVE")
    assert saved.stdout.split() == ["OK", "OK"]
    (job,) = [j for j in backup.jobs(with_minio=True) if j.name == "redis"]
    ran = _backup_exec(host, *job.command)
    assert ran.returncode == 0, ran.stderr
    snapshot = _backup_exec(host, "sh", "-c", f"head -c 5 {backup.BACKUP_DIR}/redis/*/dump.rdb")
    assert snapshot.stdout.startswith("REDIS"), snapshot


def _pg(host: str, sql: str) -> str:
    return engine.docker(host, "exec", "sos-dev-postgres", "psql", "-XAtq", "-h", pg.SOCKET_DIR, "-U", pg.SUPERUSER,
                         "-d", "postgres", "-c", sql).stdout.strip()


def test_postgres_takes_new_settings_by_a_reload_in_the_same_container(host, first):
    """The plan's own settings release command on the engine, with a changed archive_timeout: the
    running PostgreSQL 16 takes it and is the same container, never restarted; a release the
    server would refuse, or could take only at a restart, fails the step and leaves the running
    release current; then the plan's release again."""
    plan, deployment = first
    command = plan.one("command:local:Command", "postgres-settings-release")
    conf = unbundle(harness.unwrap(command.inputs["stdin"]))[pg.SETTINGS_FILE].content
    postgres = _containers(plan, deployment)["postgres-svc"].id
    state, started, deployed = _state(host, postgres), _pg(host, "SELECT pg_postmaster_start_time()"), \
        _pg(host, f"SHOW {pg.RELEASE_SETTING}")

    def apply(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["/bin/sh", "-c", harness.unwrap(command.inputs["create"])],
                              input=release.bundle_text([release.ReleaseFile(pg.SETTINGS_FILE, text)]),
                              env=engine.cli_env(host), capture_output=True, text=True, timeout=180)

    timeout = f"archive_timeout = {backup.ARCHIVE_TIMEOUT_S}s"
    assert timeout in conf
    changed = apply(conf.replace(timeout, "archive_timeout = 31s"))
    assert changed.returncode == 0, changed.stderr
    live_id = re.search(r"release (\w+) live in sos-dev-postgres", changed.stdout)
    assert live_id and live_id.group(1) != deployed, changed.stdout
    assert _pg(host, "SHOW archive_timeout") == "31s" and _pg(host, f"SHOW {pg.RELEASE_SETTING}") == live_id.group(1)
    refused = apply(conf + "archive_timeout = '5 parsecs'\n")
    assert refused.returncode != 0 and 'invalid value for parameter "archive_timeout"' in refused.stderr, refused
    assert _pg(host, "SHOW archive_timeout") == "31s"
    # Valid at a start, so the check passes; the running server cannot take it: the step fails
    # and `current` goes back, so that a restart does not start the server on it.
    needs_restart = apply(conf + "shared_buffers = 96MB\n")
    assert needs_restart.returncode != 0 and "needs a restart: shared_buffers" in needs_restart.stderr, needs_restart
    assert f"is back on releases/{live_id.group(1)}" in needs_restart.stderr, needs_restart.stderr
    current = engine.docker(host, "exec", "sos-dev-postgres", "readlink", f"{pg.SETTINGS_DIR}/current").stdout.strip()
    assert current == f"releases/{live_id.group(1)}"
    restored = apply(conf)
    assert restored.returncode == 0, restored.stderr
    assert _pg(host, f"SHOW {pg.RELEASE_SETTING}") == deployed and _pg(host, "SHOW archive_timeout") == f"{backup.ARCHIVE_TIMEOUT_S}s"
    after = _state(host, postgres)
    assert (after["StartedAt"], after["RestartCount"]) == (state["StartedAt"], state["RestartCount"])
    assert _pg(host, "SELECT pg_postmaster_start_time()") == started


def _release(host: str) -> str:
    """The release the edge runs, from its health endpoint (what apply-release.sh waits for)."""
    url = f"http://127.0.0.1:{ng.HEALTH_PORT}{ng.HEALTH_PATH}"
    return engine.docker(host, "exec", "sos-dev-nginx", "wget", "-q", "-O", "-", url).stdout.strip()


@pytest.fixture(scope="module")
def second(host, first):
    """The second `up` (SECOND_UP), and what ran before it: container ids, start times, the edge's release."""
    plan, deployment = first
    before = {name: a.id for name, a in _containers(plan, deployment).items()}
    started = {name: _state(host, cid)["StartedAt"] for name, cid in before.items()}
    edge_release = _release(host)
    after_plan, after = live.up("dev", host, lambda inputs: live.stand_in(host, inputs), before=deployment,
                                overrides=SECOND_UP)
    return before, started, edge_release, after_plan, after


def test_a_second_up_changes_only_what_changed(host, first, second, cert):
    plan, _ = first
    before, started, edge_release, after_plan, after = second
    now = {name: a.id for name, a in _containers(after_plan, after).items()}
    old_api = {r.name for r in plan.of_type(live.CONTAINER) if service_of(r) == "api"}
    # The API's replica is a new container (a new name too: the provider's autonaming) and the old
    # one is gone.
    for name in old_api:
        assert now[name] != before[name]
        assert engine.docker(host, "inspect", before[name], check=False).returncode != 0
    # Every other container is the same one, never restarted; the edge among them (its new
    # configuration is a reload, not a new container).
    for name, cid in before.items():
        if name in old_api:
            continue
        assert now[name] == cid, name
        assert _state(host, cid)["StartedAt"] == started[name], name
    status, headers, _ = fetch(cert, "api.localhost", "/v1/hello")
    assert status == 200
    assert _release(host) != edge_release
    changed = {name for op, name in after.steps if op != "delete"}
    assert not changed & {"postgres-svc", "postgres-settings-release", "redis-svc", "n8n-svc", "edge-svc",
                          "monitoring-prometheus"}, after.steps


def test_a_reloaded_edge_still_comes_back_from_a_crash(host, second, cert):
    """The second up reloaded the edge (a new release). A reload through the engine's kill API
    would have left `unless-stopped` switched off (tests/test_docker_engine.py): a crash after
    it would take the site down until someone starts the container."""
    *_, after_plan, after = second
    edge = _containers(after_plan, after)["edge-svc"].id
    restarts = faults.restarts(host, edge)
    faults.crash(host, [edge], DEFAULT_IMAGES["redis"])
    assert wait_for(lambda: faults.back(host, edge, restarts), 60), _state(host, edge)
    assert fetch(cert, "localhost")[0] == 200


def test_a_password_rotation_moves_the_roles_and_grafana_without_restarting_postgres(host, second):
    """Issue 28: `secretGenerations` bumped for the API's role and Grafana's admin, after the second
    up. PostgreSQL is the same container, never restarted, and healthy; the role takes the new
    password and refuses the old (from another container: the image trusts loopback inside its
    own); Grafana's admin is set through its CLI."""
    *_, before_plan, before = second
    postgres = _containers(before_plan, before)["postgres-svc"].id
    started = _state(host, postgres)["StartedAt"]
    rotated = {**SECOND_UP, "secretGenerations": {"postgresApp": 1, "grafanaAdmin": 1}}
    after_plan, after = live.up("dev", host, lambda inputs: live.stand_in(host, inputs), before=before,
                                overrides=rotated)
    assert _containers(after_plan, after)["postgres-svc"].id == postgres
    assert _state(host, postgres)["StartedAt"] == started
    old, new = live.secret(before_plan, before, "postgresApp"), live.secret(after_plan, after, "postgresApp")
    assert old != new

    inspected = json.loads(engine.docker(host, "inspect", postgres).stdout)[0]
    networks = list(inspected["NetworkSettings"]["Networks"])
    network, image = next((n for n in networks if "data" in n), networks[0]), inspected["Config"]["Image"]

    def login(password: str) -> int:
        """From another container, as the API connects (inside the server's own container the
        official image trusts loopback, so no password would be checked there)."""
        return engine.docker(host, "run", "--rm", "--label", engine.LABEL, "--network", network, "-e",
                             f"PGPASSWORD={password}", "--entrypoint", "psql", image, "-h", "postgres", "-U",
                             "sos_app", "-d", "storiesofsoftware", "-tAc", "SELECT 1", check=False).returncode

    assert login(new) == 0 and login(old) != 0
    health = engine.docker(host, "exec", postgres, *pg.healthcheck()[1:], check=False)
    assert health.returncode == 0, health.stderr
    grafana = _containers(after_plan, after)["monitoring-grafana"].id
    recorded = engine.docker(host, "exec", grafana, "cat", "/var/lib/grafana/admin-password.sha256").stdout.strip()
    assert recorded == hashlib.sha256(live.secret(after_plan, after, "grafanaAdmin").encode()).hexdigest()
