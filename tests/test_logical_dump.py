"""The daily logical dump, the second line of defence, with a real PostgreSQL server: roles and
both databases dumped, checked and summed, restored into a fresh cluster with the same rows and
the same passwords; a failed dump leaves nothing that looks like a dump."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from configs import backup
from configs import postgres as pg
from testsupport.servers import PgCluster, debian_pg_bin, run_init
from testsupport.tools import require_tool

PASSWORDS = {"superuser": "su-pass:1", "app": "app:p@ss/1%", "n8n": "n8n:p@ss/2#", "monitoring": "mon:3&"}


def _secrets(directory: Path) -> Path:
    directory.mkdir()
    for key, file in pg.PASSWORD_FILES.items():
        (directory / file).write_text(PASSWORDS[key])
    return directory


def _cluster(tmp_path: Path, with_platform: bool) -> PgCluster:
    # pg_dump must be at least the server's version: Debian's client tools are 15.
    cluster = PgCluster(debian_pg_bin(15))
    cluster.initdb(PASSWORDS["superuser"])
    cluster.start(conf=cluster.file("postgresql.conf", pg.postgresql_conf(256)))
    if with_platform:
        cluster.psql("--set", "db=storiesofsoftware", stdin='CREATE DATABASE :"db" ;\n')
        init = cluster.file("init.sql", pg.init_sql())
        assert run_init(cluster, init, _secrets(tmp_path / "secrets")).returncode == 0
    return cluster


def _as(cluster: PgCluster, role: str, db: str, sql: str) -> str:
    result = cluster.psql("-tAc", sql, db=db, user=role, password=PASSWORDS["app" if role == pg.APP_ROLE else "n8n"],
                          tcp=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _digest(cluster: PgCluster) -> tuple[str, str]:
    return (_as(cluster, pg.APP_ROLE, pg.APP_DATABASE, "SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM posts_probe"),
            _as(cluster, pg.N8N_ROLE, pg.N8N_DATABASE, "SELECT md5(string_agg(id || v, ',' ORDER BY id)) FROM wf_probe"))


def _run_dump(cluster: PgCluster, out: Path, metrics: Path) -> subprocess.CompletedProcess:
    script = cluster.file("logical-dump.sh", backup.logical_dump_script(), 0o755)
    env = {**os.environ, "PGHOST": str(cluster.sock), "PGPORT": str(cluster.port), "PGUSER": "postgres",
           "SOS_METRICS_DIR": str(metrics), "PATH": f"{cluster.bin}:{os.environ['PATH']}"}
    return subprocess.run(["sh", str(script), str(out)], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def source(tmp_path):
    require_tool("sha256sum")
    cluster = _cluster(tmp_path, with_platform=True)
    _as(cluster, pg.APP_ROLE, pg.APP_DATABASE, "CREATE TABLE posts_probe (id int PRIMARY KEY, v text); "
        "INSERT INTO posts_probe SELECT g, md5(g::text) FROM generate_series(1, 3000) g; SELECT 1")
    _as(cluster, pg.N8N_ROLE, pg.N8N_DATABASE, "CREATE TABLE wf_probe (id int PRIMARY KEY, v text); "
        "INSERT INTO wf_probe SELECT g, md5((g * 7)::text) FROM generate_series(1, 500) g; SELECT 1")
    yield cluster
    cluster.destroy()


def test_dump_restores_roles_and_both_databases_into_a_fresh_cluster(source, tmp_path):
    out, metrics = tmp_path / "dumps", tmp_path / "metrics"
    out.mkdir()
    metrics.mkdir()
    result = _run_dump(source, out, metrics)
    assert result.returncode == 0, result.stderr
    published = Path(result.stdout.strip())
    assert sorted(p.name for p in published.iterdir()) == ["SHA256SUMS", "n8n.dump", "roles.sql",
                                                           "storiesofsoftware.dump"]
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=published, capture_output=True).returncode == 0
    assert not [p for p in out.iterdir() if p.name.startswith(".partial")]
    assert 'sos_backup_last_run_ok{kind="logical"} 1' in (metrics / "logical.prom").read_text()

    fresh = _cluster(tmp_path, with_platform=False)
    try:
        # Roles first (the superuser already exists there: that one line may fail), then each
        # database recreated with its owner.
        fresh.psql("-v", "ON_ERROR_STOP=0", "-f", str(published / "roles.sql"))
        for db in backup.DUMPED_DATABASES:
            restored = subprocess.run([str(fresh.bin / "pg_restore"), "--create", "--exit-on-error",
                                       "--dbname=postgres", str(published / f"{db}.dump")],
                                      capture_output=True, text=True,
                                      env={**os.environ, "PGHOST": str(fresh.sock), "PGPORT": str(fresh.port),
                                           "PGUSER": "postgres"})
            assert restored.returncode == 0, restored.stderr
        # Same rows, and the applications' passwords still work.
        assert _digest(fresh) == _digest(source)
    finally:
        fresh.destroy()


def test_a_failed_dump_leaves_no_dump_and_says_so(source, tmp_path):
    out, metrics = tmp_path / "dumps", tmp_path / "metrics"
    out.mkdir()
    metrics.mkdir()
    source.stop()
    result = _run_dump(source, out, metrics)
    assert result.returncode != 0
    assert "logical backup failed" in result.stderr
    assert list(out.iterdir()) == [], "nothing published, nothing partial left"
    assert 'sos_backup_last_run_ok{kind="logical"} 0' in (metrics / "logical.prom").read_text()
    shutil.rmtree(out)
