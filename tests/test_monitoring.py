"""Monitoring, proven by the real tools on the files `python -m tools.plan --write-files` writes:
promtool checks the config and the rules, its rule unit tests fire each alert on a series that
should fire it and keep it quiet on one that should not; the dashboard queries only metrics that
real exporters (Debian's node, PostgreSQL, Redis and nginx exporters, scraping real servers),
the backup jobs, the rules or the API's documented contract produce."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from configs import backup
from configs import monitoring as mon
from configs import nginx as ng
from configs import postgres as pg
from testsupport.plans import EDGE_CONF, STACKS, container_env, container_files, plan_for
from testsupport.servers import PgCluster, free_port, port_open, run_init, wait_for
from testsupport.tools import require_tool

CONTAINER = "docker:index/container:Container"


def prometheus_dir(plan_files, stack: str) -> Path:
    return plan_files[stack] / "monitoring-prometheus" / "etc" / "sos" / "prometheus"


def grafana_dir(plan_files, stack: str) -> Path:
    return plan_files[stack] / "monitoring-grafana" / "etc" / "sos" / "grafana"


# --- promtool on the generated files ---------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_promtool_accepts_config_and_rules(plan_files, stack):
    promtool = require_tool("promtool")
    directory = prometheus_dir(plan_files, stack)
    config = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=directory, capture_output=True,
                            text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    assert "3 rule files found" in config.stdout
    rules = subprocess.run([promtool, "check", "rules", "rules/alerts.yml", "rules/certificates.yml",
                            "rules/access-keys.yml"],
                           cwd=directory, capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_scrape_jobs_reach_every_exporter_and_the_applications(plan_files, stack):
    doc = yaml.safe_load((prometheus_dir(plan_files, stack) / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in doc["scrape_configs"]}
    assert jobs["node"] == ["node-exporter:9100"] and jobs["postgres"] == ["postgres-exporter:9187"]
    assert jobs["redis"] == ["redis-exporter:9121"] and jobs["nginx"] == ["nginx-exporter:9113"]
    plan = plan_for(stack)
    replicas = len([c for c in plan.of_type(CONTAINER) if c.name.startswith(f"sos-{stack}-api-")])
    assert replicas == {"dev": 1, "staging": 2, "production": 3}[stack]
    assert jobs["api"] == [f"api-{i}:3001" for i in range(replicas)]
    assert jobs["frontend"][0] == "frontend-0:3000"
    assert doc["global"]["external_labels"]["stack"] == stack
    assert doc["rule_files"] == ["rules/*.yml"]


# --- rule unit tests -----------------------------------------------------------------------------

# alert -> (series that fire it, series that must not, when to look, labels of the firing alert)
HOUR = 3600
ALERT_CASES: dict[str, tuple[list[dict], list[dict], str, dict]] = {
    "TargetDown": (
        [{"series": 'up{job="api",instance="api-0:3001"}', "values": "0x20"}],
        [{"series": 'up{job="api",instance="api-0:3001"}', "values": "1x20"}],
        "10m", {"job": "api", "instance": "api-0:3001"}),
    # Down since 1m fires at 2m; down at one scrape and back at the next (a crash the restart
    # policy healed within the minute) must not page.
    "PostgresDown": ([{"series": 'pg_up{job="postgres"}', "values": "1 0x5"}],
                     [{"series": 'pg_up{job="postgres"}', "values": "1 0 1 1 1 1"}], "2m", {"job": "postgres"}),
    "RedisDown": ([{"series": 'redis_up{job="redis"}', "values": "1 0x5"}],
                  [{"series": 'redis_up{job="redis"}', "values": "1 0 1 1 1 1"}], "2m", {"job": "redis"}),
    "EdgeDown": ([{"series": 'nginx_up{job="nginx"}', "values": "1 0x5"}],
                 [{"series": 'nginx_up{job="nginx"}', "values": "1 0 1 1 1 1"}], "2m", {"job": "nginx"}),
    # Both API replicas down fires; one of two down does not (TargetDown's, after 5 minutes).
    "ServiceDown": ([{"series": 'up{job="api",instance="api-0:3001"}', "values": "1 0x5"},
                     {"series": 'up{job="api",instance="api-1:3001"}', "values": "1 0x5"}],
                    [{"series": 'up{job="api",instance="api-0:3001"}', "values": "1 0x5"},
                     {"series": 'up{job="api",instance="api-1:3001"}', "values": "1x5"}], "2m", {"job": "api"}),
    "HostDiskFillingUp": (
        # 100 GB disk, 30 GB free, losing 5 GB an hour: full in 6 h, inside the 4 h prediction
        # window once enough history exists.
        [{"series": 'node_filesystem_avail_bytes{mountpoint="/var/lib/docker/volumes",fstype="ext4"}',
          "values": "30e9-83333333x600"},
         {"series": 'node_filesystem_size_bytes{mountpoint="/var/lib/docker/volumes",fstype="ext4"}',
          "values": "100e9x600"}],
        [{"series": 'node_filesystem_avail_bytes{mountpoint="/var/lib/docker/volumes",fstype="ext4"}',
          "values": "30e9x600"},
         {"series": 'node_filesystem_size_bytes{mountpoint="/var/lib/docker/volumes",fstype="ext4"}',
          "values": "100e9x600"}],
        "4h", {"mountpoint": "/var/lib/docker/volumes", "fstype": "ext4"}),
    "High5xxRatio": (
        [{"series": 'http_request_duration_seconds_count{status_code="200"}', "values": "0+900x60"},
         {"series": 'http_request_duration_seconds_count{status_code="500"}', "values": "0+100x60"}],
        [{"series": 'http_request_duration_seconds_count{status_code="200"}', "values": "0+990x60"},
         {"series": 'http_request_duration_seconds_count{status_code="500"}', "values": "0+10x60"}],
        "30m", {}),
    "HighP95Latency": (
        [{"series": 'http_request_duration_seconds_bucket{le="0.5"}', "values": "0+10x60"},
         {"series": 'http_request_duration_seconds_bucket{le="2"}', "values": "0+100x60"},
         {"series": 'http_request_duration_seconds_bucket{le="+Inf"}', "values": "0+100x60"}],
        [{"series": 'http_request_duration_seconds_bucket{le="0.5"}', "values": "0+99x60"},
         {"series": 'http_request_duration_seconds_bucket{le="2"}', "values": "0+100x60"},
         {"series": 'http_request_duration_seconds_bucket{le="+Inf"}', "values": "0+100x60"}],
        "30m", {}),
    "PostgresConnectionsNearLimit": (
        [{"series": 'pg_stat_activity_count{datname="storiesofsoftware",state="active"}', "values": "90x20"},
         {"series": "pg_settings_max_connections", "values": "100x20"}],
        [{"series": 'pg_stat_activity_count{datname="storiesofsoftware",state="active"}', "values": "20x20"},
         {"series": "pg_settings_max_connections", "values": "100x20"}],
        "10m", {}),
    "RedisMemoryNearMaxmemory": (
        [{"series": "redis_memory_used_bytes", "values": "95x30"}, {"series": "redis_memory_max_bytes", "values": "100x30"}],
        # No maxmemory set (0): nothing to be near.
        [{"series": "redis_memory_used_bytes", "values": "95x30"}, {"series": "redis_memory_max_bytes", "values": "0x30"}],
        "15m", {}),
    "BackupFailing": (
        [{"series": 'sos_backup_last_run_ok{kind="logical"}', "values": "0x90"}],
        [{"series": 'sos_backup_last_run_ok{kind="logical"}', "values": "1x90"}],
        "75m", {"kind": "logical"}),
    "BackupMetricsMissing": (
        [{"series": 'sos_backup_last_run_ok{kind="logical"}', "values": "1x200"}],
        [{"series": 'sos_backup_last_success_timestamp_seconds{kind="pgbackrest"}', "values": "0+60x200"}],
        "150m", {"kind": "pgbackrest"}),
    "WalArchivingBehind": (
        [{"series": "pg_stat_archiver_last_archive_age", "values": "0+60x30"},
         {"series": "pg_stat_archiver_failed_count", "values": "0+1x30"}],
        # An idle server: no WAL to ship, old last archive, but nothing failing.
        [{"series": "pg_stat_archiver_last_archive_age", "values": "0+60x30"},
         {"series": "pg_stat_archiver_failed_count", "values": "3x30"}],
        "20m", {}),
    "OriginCertificateExpiringSoon": (
        # Expiry 10 days after the test's start (promtool's clock starts at 0).
        [{"series": f'{mon.CERT_METRIC}{{host="example.test"}}', "values": f"{10 * 86400}x100"}],
        [{"series": f'{mon.CERT_METRIC}{{host="example.test"}}', "values": f"{90 * 86400}x100"}],
        "90m", {"host": "example.test"}),
    "AccessKeyRotationOverdue": (
        # Due 30 minutes after the start, never rotated; quiet: due in 90 days.
        [{"series": f'{mon.KEY_DUE_METRIC}{{identity="api",slot="a"}}', "values": "1800x200"}],
        [{"series": f'{mon.KEY_DUE_METRIC}{{identity="api",slot="a"}}', "values": f"{90 * 86400}x200"}],
        "150m", {"identity": "api", "slot": "a"}),
}
for _kind, _age in mon.BACKUP_MAX_AGE_S.items():
    _at = f"{_age // 60 + 20}m"
    ALERT_CASES[f"BackupTooOld{_kind.capitalize()}"] = (
        # Last success at time 0, never again: older than allowed once the clock passes it.
        [{"series": f'sos_backup_last_success_timestamp_seconds{{kind="{_kind}"}}', "values": f"0x{_age // 60 + 30}"}],
        # A success every minute.
        [{"series": f'sos_backup_last_success_timestamp_seconds{{kind="{_kind}"}}', "values": f"0+60x{_age // 60 + 30}"}],
        _at, {"kind": _kind})


def _promtool_test(tests: dict, tmp_path: Path) -> None:
    """`promtool test rules` on a unit-test file; every case must pass."""
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run([require_tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_names(rules_text: str) -> dict[str, dict]:
    doc = yaml.safe_load(rules_text)
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def test_every_alert_has_a_firing_and_a_quiet_case(plan_files):
    alerts = _alert_names((prometheus_dir(plan_files, "production") / "rules" / "alerts.yml").read_text())
    assert set(alerts) == set(ALERT_CASES)
    required = {"TargetDown", "HostDiskFillingUp", "High5xxRatio", "HighP95Latency", "PostgresConnectionsNearLimit",
                "RedisMemoryNearMaxmemory", "BackupTooOldPgbackrest", "WalArchivingBehind",
                "OriginCertificateExpiringSoon"}
    assert required <= set(alerts)


@pytest.mark.parametrize("alert", sorted(ALERT_CASES))
def test_alert_fires_on_its_series_and_stays_quiet_otherwise(plan_files, alert, tmp_path):
    rules_file = prometheus_dir(plan_files, "production") / "rules" / "alerts.yml"
    rule = _alert_names(rules_file.read_text())[alert]
    firing, quiet, at, labels = ALERT_CASES[alert]
    expected_labels = {**labels, "severity": rule["labels"]["severity"]}
    # The generated rules with their annotations left out: promtool compares annotations
    # exactly, and these are templates over $value (checked by `promtool check rules`).
    doc = yaml.safe_load(rules_file.read_text())
    for group in doc["groups"]:
        for r in group["rules"]:
            r.pop("annotations", None)
    stripped = tmp_path / "alerts.yml"
    stripped.write_text(yaml.safe_dump(doc))
    tests = {
        "rule_files": [str(stripped)],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": firing,
             "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                  "exp_alerts": [{"exp_labels": expected_labels}]}]},
            {"interval": "1m", "input_series": quiet,
             "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}]},
        ],
    }
    # Annotations are templates of the labels; checked only for being present.
    assert rule["annotations"]["summary"]
    _promtool_test(tests, tmp_path)


@pytest.mark.parametrize("stack", STACKS)
def test_certificate_expiry_is_recorded_for_every_edge_host(plan_files, stack, tmp_path):
    """The recording rules carry the real expiry of the stack's certificate: promtool evaluates
    them, and the value is the canned provider expiry converted independently here."""
    rules_file = prometheus_dir(plan_files, stack) / "rules" / "certificates.yml"
    canned = ("2027-11-27T00:00:00+00:00" if stack == "dev" else "2041-11-23T20:00:00+00:00")
    expected = datetime.fromisoformat(canned).astimezone(UTC).timestamp()
    hosts = [d.inputs["name"] for d in plan_for(stack).of_type("cloudflare:index/dnsRecord:DnsRecord")] \
        if stack != "dev" else []
    doc = yaml.safe_load(rules_file.read_text())
    recorded = {r["labels"]["host"] for r in doc["groups"][0]["rules"]}
    assert len(recorded) == 5
    if hosts:
        assert recorded == set(hosts)
    tests = {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [],
        "promql_expr_test": [{"expr": mon.CERT_METRIC, "eval_time": "1m",
                              "exp_samples": [{"labels": f'{mon.CERT_METRIC}{{host="{h}"}}', "value": expected}
                                              for h in sorted(recorded)]}]}]}
    _promtool_test(tests, tmp_path)


def test_certificate_expiry_parser_reads_both_provider_formats():
    # Expected values from GNU date: `date -u -d 2027-11-27T00:00:00Z +%s`.
    assert mon.parse_timestamp("2027-11-27T00:00:00Z") == 1827273600
    assert mon.parse_timestamp("2041-11-23 20:00:00 +0000 UTC") == 2268849600
    assert mon.parse_timestamp("2027-11-27T01:00:00+01:00") == 1827273600
    with pytest.raises(ValueError, match="unrecognised certificate expiry"):
        mon.parse_timestamp("next year")


# --- Grafana ---------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_grafana_provisioning_points_at_the_provisioned_datasource(plan_files, stack):
    base = grafana_dir(plan_files, stack)
    datasources = yaml.safe_load((base / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["uid"] == mon.DATASOURCE_UID and ds["url"] == "http://prometheus:9090" and ds["editable"] is False
    provider = yaml.safe_load((base / "provisioning" / "dashboards" / "storiesofsoftware.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mon.GRAFANA_DASHBOARDS
    dashboards = list((base / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        doc = json.loads(path.read_text())
        uids = {p["datasource"]["uid"] for p in doc["panels"]} | \
            {t["datasource"]["uid"] for p in doc["panels"] for t in p["targets"]}
        assert uids == {mon.DATASOURCE_UID}
        titles = {p["title"] for p in doc["panels"]}
        assert {"HTTP request rate", "Response time (p95)", "Database connections", "Cache hit rate",
                "Host CPU", "Host memory", "Host disk", "Age of the last good backup"} <= titles


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_admin_is_generated_secret_and_reached_only_through_the_edge(stack):
    plan = plan_for(stack)
    grafana = plan.one(CONTAINER, "monitoring-grafana")
    assert not grafana.inputs.get("ports")
    assert [n["name"] for n in grafana.inputs["networksAdvanced"]] == [f"sos-{stack}-edge"]
    env = container_env(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/etc/sos/secrets/")
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false" and env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    f, is_secret = container_files(plan, grafana)["/etc/sos/secrets/grafana-admin-password"]
    assert is_secret and f.mode == 0o400
    secret = plan.one("random:index/randomPassword:RandomPassword", "secrets-grafanaAdmin")
    writer = next(r for r in plan.resources if r.name == "monitoring-grafana-cfg-etc-sos-secrets-write")
    assert secret.urn in writer.property_dependencies["stdin"]


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_retention_and_memory_come_from_settings(stack):
    plan = plan_for(stack)
    prom = plan.one(CONTAINER, "monitoring-prometheus")
    retention = {"dev": 7, "staging": 15, "production": 30}[stack]
    assert f"--storage.tsdb.retention.time={retention}d" in prom.inputs["command"]
    memory = {"dev": 512, "staging": 1024, "production": 1024}[stack]
    assert prom.inputs["memory"] == memory
    env = container_env(prom)
    assert env["GOMEMLIMIT"] == f"{memory * 9 // 10}MiB"


def test_monitoring_can_be_switched_off():
    from offline import harness

    plan = harness.run("dev", overrides={"features": {"n8n": True, "monitoring": False}})
    names = {c.name for c in plan.of_type(CONTAINER)}
    assert not {n for n in names if n.startswith("monitoring-")}
    assert "backups-svc" in names


def test_app_metrics_switch_drops_the_application_scrape_jobs(tmp_path):
    from offline import harness
    from tools.plan import write_files

    plan = harness.run("dev", overrides={"features": {"appMetrics": False}})
    write_files(plan, tmp_path)
    doc = yaml.safe_load((prometheus_dir({"dev": tmp_path}, "dev") / "prometheus.yml").read_text())
    jobs = {j["job_name"] for j in doc["scrape_configs"]}
    assert "api" not in jobs and "frontend" not in jobs and "node" in jobs


# --- metric names: real exporters against real servers -------------------------------------------

def _scrape(port: int, path: str = "/metrics") -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        text = response.read().decode()
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _wait_port(port: int) -> bool:
    return wait_for(lambda: port_open(port), 20)


class Exporter:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([*argv, f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        assert _wait_port(self.port), self.proc.stderr.read() if self.proc.poll() is not None else "no port"

    def names(self) -> set[str]:
        return _scrape(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def produced(plan_files, tmp_path_factory) -> set[str]:
    """Every metric name the stack's exporters, backup jobs and rules produce here."""
    work = tmp_path_factory.mktemp("exporters")
    names: set[str] = {"up", "scrape_duration_seconds"}

    # node exporter with the backup jobs' metric files in its textfile directory.
    textfiles = work / "textfile"
    textfiles.mkdir()
    for kind in mon.BACKUP_MAX_AGE_S:
        (textfiles / f"{kind}.prom").write_text(backup.metric_lines(kind, time.time(), 1024, True))
    node = Exporter([require_tool("prometheus-node-exporter"), f"--collector.textfile.directory={textfiles}"])
    try:
        names |= node.names()
    finally:
        node.stop()

    # PostgreSQL 16 with the platform's roles; the exporter logs in as the monitoring role.
    cluster = PgCluster()
    try:
        cluster.initdb("superuser-secret")
        cluster.start(conf=cluster.file("postgresql.conf", pg.postgresql_conf(256)))
        cluster.psql("--set", "db=storiesofsoftware", stdin='CREATE DATABASE :"db" ;\n')
        secrets = work / "secrets"
        secrets.mkdir()
        for key, file in pg.PASSWORD_FILES.items():
            (secrets / file).write_text(f"{key}-password")
        init = cluster.file("init.sql", pg.init_sql())
        assert run_init(cluster, init, secrets).returncode == 0
        exporter = Exporter([require_tool("prometheus-postgres-exporter")], env={
            "DATA_SOURCE_URI": f"127.0.0.1:{cluster.port}/{pg.APP_DATABASE}?sslmode=disable",
            "DATA_SOURCE_USER": pg.MONITORING_ROLE, "DATA_SOURCE_PASS_FILE": str(secrets / "monitoring-password")})
        try:
            got = exporter.names()
            assert "pg_up" in got
            names |= got
        finally:
            exporter.stop()
    finally:
        cluster.destroy()

    # Redis with the generated conf and ACL; the exporter authenticates like the container.
    from tests.test_redis_server import PASSWORD, RedisServer, plan_conf

    redis_dir = work / "redis"
    redis_dir.mkdir()
    server = RedisServer(redis_dir, plan_conf(plan_files, "production"), PASSWORD)
    server.start()
    try:
        exporter = Exporter([require_tool("prometheus-redis-exporter")], env={
            "REDIS_ADDR": f"redis://127.0.0.1:{server.port}", "REDIS_PASSWORD": PASSWORD})
        try:
            got = exporter.names()
            assert "redis_up" in got and "redis_memory_max_bytes" in got
            names |= got
        finally:
            exporter.stop()
    finally:
        server.stop()

    names |= nginx_status_names(plan_files, work)
    # What the rules record, and what the API promises on /metrics.
    for stack in STACKS:
        for rules in (prometheus_dir(plan_files, stack) / "rules").glob("*.yml"):
            for group in yaml.safe_load(rules.read_text())["groups"]:
                names |= {r["record"] for r in group["rules"] if "record" in r}
    return names | mon.APP_METRICS


def nginx_status_names(plan_files, work: Path) -> set[str]:
    """Debian's nginx (it has the stub_status module) serving the generated status server, and
    the nginx exporter reading it."""
    import crossplane

    nginx = require_tool("nginx")
    src = work / "generated.conf"
    src.write_text((plan_files["production"] / EDGE_CONF).read_text())
    tree = crossplane.parse(str(src), single=True, comments=False, check_ctx=False, check_args=False)["config"][0]["parsed"]
    http = next(n for n in tree if n["directive"] == "http")["block"]
    (status,) = [n for n in http if n["directive"] == "server"
                 and any(c["directive"] == "listen" and c["args"] == [str(ng.STATUS_PORT)] for c in n["block"])]
    port = free_port()
    for child in status["block"]:
        if child["directive"] == "listen":
            child["args"] = [f"127.0.0.1:{port}"]
    conf = work / "status.conf"
    conf.write_text(crossplane.build([
        {"directive": "pid", "args": [str(work / "nginx.pid")]},
        {"directive": "error_log", "args": [str(work / "error.log")]},
        {"directive": "events", "args": [], "block": []},
        {"directive": "http", "args": [], "block": [
            {"directive": "client_body_temp_path", "args": [str(work / "body")]},
            {"directive": "proxy_temp_path", "args": [str(work / "proxy")]},
            {"directive": "fastcgi_temp_path", "args": [str(work / "fastcgi")]},
            {"directive": "uwsgi_temp_path", "args": [str(work / "uwsgi")]},
            {"directive": "scgi_temp_path", "args": [str(work / "scgi")]},
            status]},
    ]))
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(work), "-g", "daemon off;"], stderr=subprocess.PIPE)
    try:
        assert _wait_port(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{ng.STATUS_PATH}", timeout=5) as response:
            assert response.read().decode().startswith("Active connections:")
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        exporter = Exporter([require_tool("prometheus-nginx-exporter"),
                             f"-nginx.scrape-uri=http://127.0.0.1:{port}{ng.STATUS_PATH}"])
        try:
            got = exporter.names()
            assert "nginx_up" in got
            return got
        finally:
            exporter.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "rate", "increase", "irate", "by", "without", "on", "ignoring",
    "group_left", "group_right", "and", "or", "unless", "time", "vector", "histogram_quantile", "predict_linear",
    "absent", "offset", "bool", "le", "humanizeDuration",
}


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers outside label matchers, ranges, strings,
    grouping clauses and function calls."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end():].lstrip()
        if word in PROMQL_WORDS or following.startswith("("):
            continue
        if re.fullmatch(r"\d+[smhdwy]?", word) or re.fullmatch(r"e\d+", word):
            continue
        found.add(word)
    return found


def test_metric_name_extraction():
    assert metric_names('sum by (state) (pg_stat_activity_count{datname="x"})') == {"pg_stat_activity_count"}
    assert metric_names("rate(a_total[5m]) / (rate(a_total[5m]) + rate(b_total[5m]))") == {"a_total", "b_total"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m]))) > 1") == {"h_bucket"}


@pytest.mark.parametrize("stack", STACKS)
def test_dashboard_and_rules_query_only_metrics_that_exist(plan_files, stack, produced):
    exprs = []
    for path in (grafana_dir(plan_files, stack) / "dashboards").glob("*.json"):
        exprs += [t["expr"] for p in json.loads(path.read_text())["panels"] for t in p["targets"]]
    alerts = _alert_names((prometheus_dir(plan_files, stack) / "rules" / "alerts.yml").read_text())
    exprs += [r["expr"] for r in alerts.values()]
    queried = set().union(*(metric_names(e) for e in exprs))
    assert len(queried) > 15
    assert queried <= produced, sorted(queried - produced)


@pytest.mark.parametrize("stack", STACKS)
def test_grafana_finds_every_provisioning_folder(stack):
    """Grafana reads alerting and plugins besides datasources and dashboards, and logs an error
    for each missing folder; the provisioning tree is one config volume that has them all."""
    import io
    import tarfile

    plan = plan_for(stack)
    grafana = plan.one(CONTAINER, "monitoring-grafana")
    provisioning = [m for m in grafana.inputs["mounts"] if m["target"] == "/etc/sos/grafana/provisioning"]
    assert len(provisioning) == 1 and provisioning[0]["readOnly"] is True
    files = container_files(plan, grafana)
    assert {"/etc/sos/grafana/provisioning/datasources/prometheus.yml",
            "/etc/sos/grafana/provisioning/dashboards/storiesofsoftware.yml"} <= set(files)
    writer = next(r for r in plan.resources if r.name == "monitoring-grafana-cfg-etc-sos-grafana-provisioning-write")
    import base64

    from offline.harness import unwrap

    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(unwrap(writer.inputs["stdin"])))) as tar:
        folders = {m.name for m in tar.getmembers() if m.isdir()}
    assert {"alerting", "plugins", "datasources", "dashboards"} <= folders
