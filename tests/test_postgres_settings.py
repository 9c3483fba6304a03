"""PostgreSQL's reloadable settings as a release (configs/release.py, components/postgres.py),
proven on a real PostgreSQL 16 server with the plan's own installer, check, reload and probe:
which settings a reload can apply is the server's word (pg_settings.context), a new release
reaches the running server without a restart, and a release the server would refuse never
becomes current."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from configs import backup, release
from configs import postgres as pg
from configs.file_bundle import bound_settings, unbundle
from offline import harness
from testsupport.plans import plan_for
from testsupport.servers import PgCluster, wait_for

pytestmark = pytest.mark.real_tools
MEMORY_MB = 512


def _settings(plan: harness.Plan) -> tuple[dict[str, str], str]:
    """The release command's bound settings and the release's postgresql.conf, as deployed."""
    command = plan.one("command:local:Command" if plan.stack == "dev" else "command:remote:Command",
                       "postgres-settings-release")
    files = unbundle(harness.unwrap(command.inputs["stdin"]))
    return bound_settings(harness.unwrap(command.inputs["create"])), files[pg.SETTINGS_FILE].content


@pytest.fixture(scope="module")
def server():
    """A server laid out as the container is: its own file, and the settings release it includes."""
    cluster = PgCluster()
    cluster.initdb("x")
    etc = cluster.root / "etc"
    (etc / "settings").mkdir(parents=True)
    # archive_timeout and archive_command are in the release; nothing is archived here.
    conf = pg.restart_conf(MEMORY_MB, {**backup.archive_settings(), "archive_mode": "off"})
    listener = {"listen_addresses = '*'": "listen_addresses = '127.0.0.1'", f"port = {pg.PORT}": f"port = {cluster.port}",
                f"unix_socket_directories = '{pg.SOCKET_DIR}'": f"unix_socket_directories = '{cluster.sock}'"}
    for deployed, here in listener.items():
        assert deployed in conf
        conf = conf.replace(deployed, here)
    (etc / "postgresql.conf").write_text(conf)
    for path in [etc, *etc.rglob("*")] if cluster.as_root else []:
        shutil.chown(path, "nobody", "nogroup")
    cluster.settings_dir = etc / "settings"  # type: ignore[attr-defined]
    cluster.first_release = _install(cluster, _plan_release())  # type: ignore[attr-defined]
    cluster.start(conf=etc / "postgresql.conf", own_listener=True)
    yield cluster
    cluster.destroy()


def _plan_release() -> str:
    return _settings(plan_for("dev"))[1]


def _install(cluster: PgCluster, conf: str) -> str:
    """install-release.sh as the plan binds it, run as the server's user with the real postgres
    on PATH; returns the id, or raises with what the check said."""
    bound, _ = _settings(plan_for("dev"))
    env = {"PATH": f"{cluster.bin}:/usr/bin:/bin", "LANG": "C", "SOS_RELEASE_DIR": str(cluster.settings_dir),
           **{k: bound[k] for k in ("SOS_CHECK", "SOS_MARKER_FILE", "SOS_MARKER")}}
    bundle = release.bundle_text([release.ReleaseFile(pg.SETTINGS_FILE, conf)])
    result = subprocess.run(cluster._server_cmd(["/bin/sh", "-c", bound["SOS_INSTALL"]]), input=base64.b64decode(bundle),
                            capture_output=True, env=env, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.decode())
    return result.stdout.decode().strip().splitlines()[-1]


def _in_container(cluster: PgCluster, setting: str) -> subprocess.CompletedProcess:
    """SOS_RELOAD or SOS_PROBE as apply-release.sh runs it inside the container (as the server's
    user, PGDATA set as the image sets it), pointed at this server's socket and port."""
    bound, _ = _settings(plan_for("dev"))
    script = bound[setting].replace(f"--host {pg.SOCKET_DIR}", f"--host {cluster.sock} --port {cluster.port}")
    return subprocess.run(cluster._server_cmd(["/bin/sh", "-c", script]), capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PGDATA": str(cluster.data),
                               "PATH": f"{cluster.bin}:{Path(cluster.psql_bin).parent}:/usr/bin:/bin"})


def _started(cluster: PgCluster) -> str:
    return cluster.query("SELECT pg_postmaster_start_time()")


def _reload_until(cluster: PgCluster, wanted: str) -> str:
    assert _in_container(cluster, "SOS_RELOAD").returncode == 0
    seen = [""]

    def reports_it() -> bool:
        seen[0] = _in_container(cluster, "SOS_PROBE").stdout.strip()
        return seen[0] == wanted

    wait_for(reports_it, 15)
    return seen[0]


def test_a_reload_applies_exactly_the_settings_the_release_holds():
    """The server's own word: every setting in the server's file takes a restart, none in the
    release does. Shown able to fail: a restart-only setting moved into the release is named."""
    cluster = PgCluster()
    try:
        cluster.initdb("x")
        cluster.start()
        everything = {**pg.server_settings(MEMORY_MB), **backup.archive_settings()}
        names = ", ".join(f"'{n}'" for n in everything)
        context = dict(line.split("|") for line in cluster.query(
            f"SELECT lower(name), context FROM pg_settings WHERE lower(name) IN ({names})").splitlines())
        # pg_stat_statements' own is defined once the library is loaded (shared_preload_libraries).
        assert set(everything) - set(context) == {"pg_stat_statements.track"}
        assert {n for n, c in context.items() if c == "postmaster"} == set(pg.RESTART_ONLY)
        restart = pg.restart_conf(MEMORY_MB, backup.archive_settings())
        reload_ = pg.reload_conf(MEMORY_MB, backup.archive_settings())
        assert all(f"\n{n} = " in restart and f"\n{n} = " not in reload_ for n in pg.RESTART_ONLY)
        assert all(f"\n{n} = " in reload_ for n in set(everything) - pg.RESTART_ONLY)
    finally:
        cluster.destroy()


def test_the_running_server_has_loaded_the_first_release(server):
    assert server.query(f"SHOW {pg.RELEASE_SETTING}") == server.first_release
    assert server.query("SHOW archive_timeout") == f"{backup.ARCHIVE_TIMEOUT_S}s"
    assert _in_container(server, "SOS_PROBE").stdout.strip() == server.first_release


def test_a_new_release_reaches_the_running_server_without_a_restart(server):
    started = _started(server)
    changed = _plan_release().replace(f"archive_timeout = {backup.ARCHIVE_TIMEOUT_S}s", "archive_timeout = 30s")
    changed = changed.replace("log_min_duration_statement = 500ms", "log_min_duration_statement = 250ms")
    assert changed != _plan_release()
    new = _install(server, changed)
    assert new != server.first_release
    assert _reload_until(server, new) == new
    assert server.query("SHOW archive_timeout") == "30s"
    assert server.query("SHOW log_min_duration_statement") == "250ms"
    assert _started(server) == started, "the server restarted"
    # Back to the plan's, as the next deployment would.
    assert _reload_until(server, _install(server, _plan_release())) == server.first_release
    assert server.query("SHOW archive_timeout") == f"{backup.ARCHIVE_TIMEOUT_S}s"


@pytest.mark.parametrize(("line", "said"), [
    ("archive_timeout = 55x", 'invalid value for parameter "archive_timeout"'),
    ("archive_timout = 55s", 'unrecognized configuration parameter "archive_timout"'),
    ("work_mem = '4MB", "syntax error"),
])
def test_a_release_the_server_would_refuse_never_becomes_current(server, line, said):
    current = (server.settings_dir / release.CURRENT).resolve()
    kept = sorted((server.settings_dir / "releases").iterdir())
    with pytest.raises(RuntimeError) as refused:
        _install(server, _plan_release() + line + "\n")
    assert said in str(refused.value) and "the running configuration is unchanged" in str(refused.value)
    assert (server.settings_dir / release.CURRENT).resolve() == current
    assert sorted((server.settings_dir / "releases").iterdir()) == kept
    # A restart now would still start: the server reads the current release.
    assert _in_container(server, "SOS_PROBE").stdout.strip() == server.first_release


def test_a_value_only_the_running_server_can_judge_is_never_reported_live(server):
    """The check runs without the server's preloaded libraries, so it takes any value of an
    extension's setting; the running server refuses a bad one and keeps its own, and the probe
    says so instead of the id."""
    bad = _plan_release().replace("pg_stat_statements.track = top", "pg_stat_statements.track = bogus")
    assert bad != _plan_release()
    new = _install(server, bad)
    try:
        report = _reload_until(server, new)
        assert report.startswith("errors: ") and "pg_stat_statements.track" in report, report
        assert server.query("SHOW pg_stat_statements.track") == "top"
    finally:
        assert _reload_until(server, _install(server, _plan_release())) == server.first_release


def test_a_release_that_needs_a_restart_is_never_reported_live(server):
    """A restart-only setting passes postgres -C (it is valid at a start), so the check cannot
    catch it; the probe does, and apply-release.sh fails the deployment with its report."""
    bigger = _plan_release() + "shared_buffers = 96MB\n"
    new = _install(server, bigger)
    try:
        report = _reload_until(server, new)
        assert report == "needs a restart: shared_buffers", report
    finally:
        assert _reload_until(server, _install(server, _plan_release())) == server.first_release
