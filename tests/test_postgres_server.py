"""The data tier's PostgreSQL files, proven by a real PostgreSQL 16 server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from configs import postgres as pg
from testsupport import images
from testsupport.plans import plan_for
from testsupport.servers import PgCluster, node_module, official_first_boot, run_init, wait_for
from testsupport.tools import require_tool

# URL-, shell- and pgpass-hostile passwords, as the generated ones may be.
PASSWORDS = {
    "superuser": "su:per@user/%?#&=+$!()[]{}<>^~*-_",
    "app": "a:b@c/d?e#f%g&h=i+j$k!l(m)n[o]p{q}r<s>t^u~v*w-x_y\\z",
    "n8n": "n8n:pass@word/with%special#chars&more=+$",
    "monitoring": "mon:itor@ing/%#&=+$!~",
}


def plan_file(stack: str, rel: str, plan_files: dict[str, Path]) -> Path:
    path = plan_files[stack] / "postgres-svc" / rel
    assert path.exists(), f"the plan did not write {rel}"
    return path


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pg-secrets")
    for key, file in pg.PASSWORD_FILES.items():
        (directory / file).write_text(PASSWORDS[key])
    (directory / pg.HEALTH_PASSFILE).write_text(pg.pgpass_line(PASSWORDS["app"]))
    (directory / pg.HEALTH_PASSFILE).chmod(0o600)
    return directory


@pytest.fixture(scope="module")
def server(plan_files, secrets_dir):
    """A cluster initialised exactly as the image does, then run with the generated conf."""
    cluster = PgCluster()
    init_sql = plan_file("production", "docker-entrypoint-initdb.d/10-storiesofsoftware.sql", plan_files)
    first = official_first_boot(cluster, init_sql, secrets_dir, PASSWORDS["superuser"])
    assert first.returncode == 0, first.stderr
    cluster.start(conf=cluster.deployed_conf(plan_files["production"]))
    cluster.first_boot = first  # type: ignore[attr-defined]
    yield cluster
    cluster.destroy()


def app(cluster: PgCluster, sql: str, db: str = pg.APP_DATABASE) -> subprocess.CompletedProcess:
    return cluster.psql("-tAc", sql, db=db, user=pg.APP_ROLE, password=PASSWORDS["app"], tcp=True)


def n8n(cluster: PgCluster, sql: str, db: str = pg.N8N_DATABASE) -> subprocess.CompletedProcess:
    return cluster.psql("-tAc", sql, db=db, user=pg.N8N_ROLE, password=PASSWORDS["n8n"], tcp=True)


def test_init_script_succeeds_where_postgres_db_already_exists(server):
    assert server.first_boot.returncode == 0
    # The seed's script failed right here: CREATE DATABASE on the image's POSTGRES_DB.
    assert server.query("SELECT datname FROM pg_database WHERE datname = 'storiesofsoftware'") == "storiesofsoftware"


def test_init_script_is_safe_to_run_again(server, plan_files, secrets_dir):
    init_sql = plan_file("production", "docker-entrypoint-initdb.d/10-storiesofsoftware.sql", plan_files)
    before = server.query("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1")
    again = run_init(server, init_sql, secrets_dir)
    assert again.returncode == 0, again.stderr
    assert server.query("SELECT rolname, rolsuper FROM pg_roles ORDER BY 1") == before
    assert app(server, "SELECT 1").stdout.strip() == "1"


def test_no_password_reaches_the_server_log(server):
    log = server.log.read_text()
    for password in PASSWORDS.values():
        assert password not in log


def test_roles_own_their_databases_and_are_not_superusers(server):
    owners = server.query("SELECT d.datname || '=' || r.rolname FROM pg_database d "
                          "JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname IN ('storiesofsoftware','n8n') ORDER BY 1")
    assert owners.splitlines() == ["n8n=n8n", "storiesofsoftware=sos_app"]
    flags = server.query("SELECT rolname, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles "
                         "WHERE rolname IN ('sos_app','n8n','sos_monitoring') ORDER BY 1")
    assert flags.splitlines() == ["n8n|f|f|f", "sos_app|f|f|f", "sos_monitoring|f|f|f"]


def test_each_role_works_in_its_own_database(server):
    assert app(server, "CREATE TABLE app_probe (id uuid DEFAULT uuid_generate_v4()); "
                       "INSERT INTO app_probe DEFAULT VALUES; SELECT count(*) FROM app_probe").stdout.strip() == "1"
    assert n8n(server, "CREATE TABLE n8n_probe (id int); INSERT INTO n8n_probe VALUES (1); "
                       "SELECT count(*) FROM n8n_probe").stdout.strip() == "1"


def test_roles_cannot_touch_each_others_database(server):
    denied = app(server, "SELECT 1", db=pg.N8N_DATABASE)
    assert denied.returncode != 0 and "permission denied for database" in denied.stderr
    denied = n8n(server, "SELECT 1", db=pg.APP_DATABASE)
    assert denied.returncode != 0 and "permission denied for database" in denied.stderr


def test_applications_cannot_create_roles_or_databases(server):
    for run in (app, n8n):
        result = run(server, "CREATE ROLE intruder")
        assert result.returncode != 0 and "permission denied" in result.stderr
        result = run(server, "CREATE DATABASE intruder")
        assert result.returncode != 0 and "permission denied" in result.stderr


def test_wrong_password_is_refused(server):
    result = server.psql("-tAc", "SELECT 1", db=pg.APP_DATABASE, user=pg.APP_ROLE,
                         password="not-the-password", tcp=True)
    assert result.returncode != 0 and "password authentication failed" in result.stderr


def test_extensions_and_unaccent_search_configuration(server):
    extensions = server.query("SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension",
                              db=pg.APP_DATABASE)
    assert {"uuid-ossp", "pg_trgm", "unaccent"} <= set(extensions.split(","))
    assert app(server, "SELECT to_tsvector('public.simple_unaccent', 'Café Ñandú')").stdout.strip() == "'cafe':1 'nandu':2"


def test_monitoring_role_reads_statistics_but_writes_nothing(server):
    sql = "SELECT count(*) >= 0 FROM pg_stat_activity"
    ok = server.psql("-tAc", sql, db=pg.APP_DATABASE, user=pg.MONITORING_ROLE,
                     password=PASSWORDS["monitoring"], tcp=True)
    assert ok.returncode == 0 and ok.stdout.strip() == "t"
    denied = server.psql("-tAc", "CREATE TABLE m (id int)", db=pg.APP_DATABASE, user=pg.MONITORING_ROLE,
                         password=PASSWORDS["monitoring"], tcp=True)
    assert denied.returncode != 0 and "permission denied" in denied.stderr


# ---------------------------------------------------------------------- migration-time SQL

SCHEMA = images.APP_SCHEMA  # what the API image's migration leaves (its stand-in applies it too)


@pytest.fixture(scope="module")
def migrated(server, tmp_path_factory):
    """Tables as prisma migrate would leave them, then the migration-time SQL as the app role."""
    assert app(server, SCHEMA).returncode == 0
    path = tmp_path_factory.mktemp("migration") / "migration.sql"
    path.write_text(pg.migration_sql())
    for _ in range(2):  # idempotent
        result = server.psql("-f", str(path), db=pg.APP_DATABASE, user=pg.APP_ROLE,
                             password=PASSWORDS["app"], tcp=True)
        assert result.returncode == 0, result.stderr
    rows = [("null-excerpt", "Árboles del bosque", None, "Los pinos crecen"),
            ("null-content", "Notes on caching", "Redis and friends", None),
            ("full", "Plain post", "excerpt words", "content words")]
    for slug, title, excerpt, content in rows:
        app(server, "INSERT INTO posts (slug, locale, title, excerpt, content, status) VALUES "
                    f"('{slug}', 'es', '{title}', {_lit(excerpt)}, {_lit(content)}, 'published')")
    app(server, "INSERT INTO posts (slug, locale, title, status) "
                "SELECT 'filler-' || g, 'en', 'filler ' || g, 'draft' FROM generate_series(1, 2000) g; ANALYZE posts")
    return server


def _lit(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


SEARCH = ("SELECT slug FROM posts WHERE posts_search_document(title, excerpt, content) @@ "
          "websearch_to_tsquery('public.simple_unaccent', '{q}') ORDER BY slug")


def test_search_finds_posts_with_null_excerpt_or_content(migrated):
    assert app(migrated, SEARCH.format(q="arboles")).stdout.split() == ["null-excerpt"]
    assert app(migrated, SEARCH.format(q="pinos")).stdout.split() == ["null-excerpt"]
    assert app(migrated, SEARCH.format(q="caching")).stdout.split() == ["null-content"]
    # The seed's expression loses such posts entirely: it is NULL.
    seed = ("SELECT count(*) FROM posts WHERE to_tsvector('public.simple_unaccent', "
            "title || ' ' || excerpt || ' ' || content) @@ plainto_tsquery('public.simple_unaccent', 'arboles')")
    assert app(migrated, seed).stdout.strip() == "0"


def test_search_uses_the_index(migrated):
    plan = app(migrated, "SET enable_seqscan = off; EXPLAIN (FORMAT JSON) " + SEARCH.format(q="caching"))
    assert plan.returncode == 0, plan.stderr
    text = plan.stdout.strip().splitlines()
    doc = json.loads("\n".join(line for line in text if line and line != "SET"))
    assert "idx_posts_search" in json.dumps(doc)


def test_lookup_indexes_exist(migrated):
    names = app(migrated, "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes "
                          "WHERE tablename IN ('posts','books')").stdout.strip().split(",")
    assert {"idx_posts_slug_locale", "idx_posts_published_at", "idx_posts_status",
            "idx_books_slug_locale", "idx_posts_search"} <= set(names)


# ---------------------------------------------------------------------- postgresql.conf

def test_generated_conf_is_loaded_with_the_derived_values(server):
    memory = 2048  # production's postgres limit
    t = pg.tuning(memory)
    shown = {name: server.query(f"SHOW {name}") for name in (
        "shared_buffers", "effective_cache_size", "work_mem", "maintenance_work_mem",
        "max_connections", "max_wal_size", "min_wal_size", "checkpoint_timeout",
        "checkpoint_completion_target", "wal_level", "random_page_cost", "password_encryption",
        "shared_preload_libraries", "config_file")}
    assert shown["shared_buffers"] == f"{t.shared_buffers_mb}MB" == "512MB"
    assert shown["effective_cache_size"] == "1536MB"
    assert shown["work_mem"] == _pg_size(t.work_mem_kb)
    assert shown["maintenance_work_mem"] == "128MB"
    assert shown["max_connections"] == str(t.max_connections) == "204"
    assert shown["max_wal_size"] == "4GB" and shown["min_wal_size"] == "256MB"
    assert shown["checkpoint_timeout"] == "15min" and shown["checkpoint_completion_target"] == "0.9"
    assert shown["wal_level"] == "replica"
    assert shown["random_page_cost"] == "1.1"
    assert shown["password_encryption"] == "scram-sha-256"
    assert shown["shared_preload_libraries"] == "pg_stat_statements"
    assert shown["config_file"].endswith("postgresql.conf")
    # Not the defaults the seed ran with.
    assert shown["shared_buffers"] != "128MB" and shown["work_mem"] != "4MB"


def _pg_size(kb: int) -> str:
    return f"{kb // 1024}MB" if kb % 1024 == 0 else f"{kb}kB"


@pytest.mark.parametrize("memory", [256, 1024, 2048, 8192])
def test_tuning_stays_inside_the_container(memory):
    t = pg.tuning(memory)
    assert t.shared_buffers_mb <= memory // 4 or t.shared_buffers_mb == 32
    assert t.effective_cache_size_mb < memory
    # Worst case: every connection sorting three times at once still fits next to the buffers.
    assert t.shared_buffers_mb + t.max_connections * 3 * t.work_mem_kb / 1024 <= memory * 1.01
    assert t.maintenance_work_mem_mb <= max(16, memory // 16)


def test_every_stack_conf_is_accepted_by_the_server(plan_files):
    """postgres -C reads the whole file and prints one value, failing on any bad line."""
    cluster = PgCluster()
    try:
        cluster.initdb("x")
        for stack in ("dev", "staging", "production"):
            conf = cluster.deployed_conf(plan_files[stack], release_id=stack)
            argv = [str(cluster.bin / "postgres"), "-D", str(cluster.data), "-c", f"config_file={conf}",
                    "-C", "shared_buffers"]
            # Two clean-clone CI runs on a loaded machine saw this fail with a message cut short,
            # never reproduced: one more try tells a transient failure from a real one (which
            # fails both), and the message keeps everything postgres said, both times.
            attempts = [cluster._run(argv, timeout=300)]
            if attempts[0].returncode != 0:
                attempts.append(cluster._run(argv, timeout=300))
            result = attempts[-1]
            if result.returncode != 0:
                pytest.fail(f"{stack}: postgres -C refused the generated conf ({' '.join(argv)}):\n" + "\n".join(
                    f"attempt {i + 1}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
                    for i, r in enumerate(attempts)), pytrace=False)
            memory = plan_for(stack).one("docker:index/container:Container", "postgres-svc").inputs["memory"]
            # -C prints shared_buffers in 8 kB pages.
            assert int(result.stdout.strip()) * 8 // 1024 == memory // 4
            # And the server's file includes the settings release.
            included = cluster._run([*argv[:-1], pg.RELEASE_SETTING], timeout=300)
            assert included.stdout.strip() == stack, included.stderr
            shutil.rmtree(cluster.root / "etc")
    finally:
        shutil.rmtree(cluster.root, ignore_errors=True)


# ---------------------------------------------------------------------- healthcheck

def _health(cluster: PgCluster, secrets_dir: Path) -> int:
    argv = pg.healthcheck(port=cluster.port, passfile=str(secrets_dir / pg.HEALTH_PASSFILE))
    assert argv[0] == "CMD"
    return subprocess.run(argv[1:], capture_output=True, text=True, timeout=30).returncode


def test_healthcheck_is_the_command_the_container_runs():
    container = plan_for("dev").one("docker:index/container:Container", "postgres-svc")
    assert container.inputs["healthcheck"]["tests"] == pg.healthcheck()


def test_healthcheck_waits_for_tcp_logins_to_the_app_database(plan_files, secrets_dir):
    cluster = PgCluster()
    try:
        cluster.initdb(PASSWORDS["superuser"])
        # The image's first-boot server: socket only. pg_isready on the socket says "ready".
        cluster.start(tcp=False)
        isready = subprocess.run([require_tool("pg_isready"), "-h", str(cluster.sock), "-p", str(cluster.port)],
                                 capture_output=True, text=True)
        assert isready.returncode == 0, "the socket check would call this server ready"
        assert _health(cluster, secrets_dir) != 0
        # Roles and databases exist, but the server still listens on the socket alone.
        cluster.psql("--set", "db=storiesofsoftware", stdin='CREATE DATABASE :"db" ;\n')
        init_sql = plan_file("dev", "docker-entrypoint-initdb.d/10-storiesofsoftware.sql", plan_files)
        assert run_init(cluster, init_sql, secrets_dir).returncode == 0
        assert _health(cluster, secrets_dir) != 0
        cluster.stop()
        cluster.start(tcp=True)
        assert wait_for(lambda: _health(cluster, secrets_dir) == 0)
        cluster.stop()
        assert _health(cluster, secrets_dir) != 0
    finally:
        cluster.destroy()


def test_healthcheck_fails_on_a_wrong_password(server, tmp_path):
    bad = tmp_path / pg.HEALTH_PASSFILE
    bad.write_text(pg.pgpass_line("wrong"))
    bad.chmod(0o600)
    argv = pg.healthcheck(port=server.port, passfile=str(bad))
    assert subprocess.run(argv[1:], capture_output=True).returncode != 0


# ---------------------------------------------------------------------- URLs

def test_database_url_with_hostile_password_works_in_libpq(server):
    url = pg.database_url(PASSWORDS["app"], "127.0.0.1", port=server.port)
    assert re.match(r"^postgresql://sos_app:[^@/:]+@127\.0\.0\.1:\d+/storiesofsoftware$", url)
    result = subprocess.run([server.psql_bin, "-X", "-tAc", "SELECT current_user", url],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sos_app"


def test_database_url_works_in_node_postgres(server):
    """node-postgres parses DATABASE_URL the way the API's driver does."""
    pg_module = node_module("pg")
    url = pg.database_url(PASSWORDS["app"], "127.0.0.1", port=server.port)
    script = ("const {Client}=require(process.argv[1]);const c=new Client({connectionString:process.argv[2]});"
              "c.connect().then(()=>c.query('select current_user as u')).then(r=>{console.log(r.rows[0].u);return c.end()})"
              ".catch(e=>{console.error(e.message);process.exit(1)})")
    result = subprocess.run(["node", "-e", script, str(pg_module), url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sos_app"


def test_pgpass_escapes_separators():
    assert pg.pgpass_line("a:b\\c") == "*:*:storiesofsoftware:sos_app:a\\:b\\\\c\n"
