"""Prometheus, Grafana and the exporters, each a hardened ContainerService.

Prometheus joins the edge network (the applications, the nginx exporter, Grafana) and the data
network (the other exporters); nothing is published. Grafana is reached only through the edge
proxy's `grafana` host, which admits the admin networks only. Files come from
configs/monitoring.py.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from components.container_service import (
    ConfigFile,
    ContainerService,
    ContainerServiceArgs,
    DockerRuntime,
    Healthcheck,
    NetworkAttachment,
    VolumeMount,
    named_volume,
    scratch,
)
from components.host_commands import SHOWN
from configs import backup
from configs import monitoring as mon
from configs import postgres as pg
from configs import redis as redis_config
from configs.paths import SECRETS_DIR
from settings import Limits

NOBODY = "65534:65534"
TMP = {"/tmp": scratch(16)}


def _http_check(port: int, path: str) -> Healthcheck:
    # busybox wget, which these images (prometheus/busybox- and alpine-based) carry.
    return Healthcheck(["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"],
                       start_period="60s")


@dataclass
class MonitoringArgs:
    runtime: DockerRuntime
    stack: str
    images: Mapping[str, str]
    limits: Mapping[str, Limits]
    retention_days: int
    edge_network: pulumi.Input[str]
    data_network: pulumi.Input[str]
    grafana_url: str
    grafana_admin_password: pulumi.Output[str]
    monitoring_password: pulumi.Output[str]
    redis_password: pulumi.Output[str]
    nginx_status_url: str
    backup_metrics_volume: pulumi.Input[str]
    app_targets: mon.ScrapeTargets
    # host name -> expiry as the certificate's provider reports it
    certificate_expiries: pulumi.Input[Mapping[str, str]]
    # "identity/slot" -> creation time of each static access key, and their rotation period.
    access_keys_created: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    key_rotation_days: int = 0
    # Prometheus's history and Grafana's users and UI-edited dashboards: kept like the other data.
    protect_data: bool = False
    depends_on: Sequence[pulumi.Resource] = field(default_factory=list)


# Prometheus's memory limit bounds how many series it holds; 8 GB of disk per GB of memory keeps
# weeks of those series (about 1-2 bytes a sample) and stays far below staging's 50 GB volume.
DISK_GB_PER_MEMORY_GB = 8


class Monitoring(pulumi.ComponentResource):
    services: dict[str, ContainerService]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix, labels = args.runtime.name_prefix, args.runtime.labels
        edge, data = NetworkAttachment(args.edge_network), NetworkAttachment(args.data_network)
        self.services = {}

        def add(spec: ContainerServiceArgs) -> ContainerService:
            self.services[spec.service] = ContainerService(f"{name}-{spec.service}", spec, opts=child)
            return self.services[spec.service]

        def head(key: str, svc: str) -> tuple[str, DockerRuntime, str, Limits]:
            """The first four arguments of every service here: name, runtime, image, limits."""
            return svc, args.runtime, args.images[key], args.limits[key]

        add(ContainerServiceArgs(*head("nodeExporter", "node-exporter"),
                networks=[data], user=NOBODY,
                command=["--path.rootfs=/host", "--path.procfs=/host/proc", "--path.sysfs=/host/sys",
                         f"--web.listen-address=:{mon.EXPORTER_PORTS['node']}",
                         f"--collector.textfile.directory={backup.METRICS_DIR}",
                         # Docker's own layers and the kernel's pseudo filesystems are noise; the
                         # volumes' mount (/var/lib/docker/volumes) is what must not fill up.
                         "--collector.filesystem.mount-points-exclude="
                         "^/(dev|proc|sys|run|var/lib/docker/(overlay2|containers|plugins))($|/)"],
                volumes=[VolumeMount("/", "/host", read_only=True, kind="bind"),
                         VolumeMount(args.backup_metrics_volume, backup.METRICS_DIR, read_only=True)],
                healthcheck=_http_check(mon.EXPORTER_PORTS["node"], "/"),
                opt_outs=frozenset({"reads-host"})))
        add(ContainerServiceArgs(*head("postgresExporter", "postgres-exporter"),
                networks=[data], user=NOBODY,
                # connect_timeout (seconds) well inside Prometheus's 10 s scrape timeout: a server
                # that is gone or hung is then reported as pg_up 0, which PostgresDown reads, not
                # a failed scrape (the fault drill met lookups of a stopped container's name
                # taking over a minute).
                env={"DATA_SOURCE_URI": f"postgres:{pg.PORT}/{pg.APP_DATABASE}?sslmode=disable"
                                        f"&connect_timeout={mon.EXPORTER_CONNECT_TIMEOUT_S}",
                     "DATA_SOURCE_USER": pg.MONITORING_ROLE,
                     "DATA_SOURCE_PASS_FILE": f"{SECRETS_DIR}/monitoring-password",
                     "PG_EXPORTER_WEB_LISTEN_ADDRESS": f":{mon.EXPORTER_PORTS['postgres']}"},
                files=[ConfigFile(f"{SECRETS_DIR}/monitoring-password", args.monitoring_password, mode="0400",
                                  secret=True)],
                tmpfs=TMP,
                healthcheck=_http_check(mon.EXPORTER_PORTS["postgres"], "/"),
                depends_on=args.depends_on))
        add(ContainerServiceArgs(*head("redisExporter", "redis-exporter"),
                # The image's own user (oliver006/redis_exporter's Dockerfile: USER 59000:59000).
                networks=[data], user="59000:59000",
                # The same for redis_up (its default is 15 s, past the scrape timeout).
                env={"REDIS_ADDR": f"redis://redis:{redis_config.PORT}",
                     "REDIS_EXPORTER_CONNECTION_TIMEOUT": f"{mon.EXPORTER_CONNECT_TIMEOUT_S}s",
                     "REDIS_EXPORTER_WEB_LISTEN_ADDRESS": f":{mon.EXPORTER_PORTS['redis']}"},
                secret_env={"REDIS_PASSWORD": args.redis_password},
                tmpfs=TMP,
                healthcheck=_http_check(mon.EXPORTER_PORTS["redis"], "/"),
                depends_on=args.depends_on))
        add(ContainerServiceArgs(*head("nginxExporter", "nginx-exporter"),
                networks=[edge], user=NOBODY,
                command=[f"--nginx.scrape-uri={args.nginx_status_url}",
                         f"--web.listen-address=:{mon.EXPORTER_PORTS['nginx']}"],
                # The image is built FROM scratch: no shell, no wget, nothing to probe with.
                opt_outs=frozenset({"no-healthcheck"}),
                depends_on=args.depends_on))

        prometheus_data = named_volume(f"{name}-prometheus-data", f"{prefix}-prometheus-data", labels, self,
                                       keep=args.protect_data)
        limits = args.limits["prometheus"]
        rules = pulumi.Output.from_input(args.certificate_expiries).apply(mon.certificate_rules)
        key_rules = pulumi.Output.from_input(args.access_keys_created).apply(
            lambda created: mon.access_key_rules(created, args.key_rotation_days))
        add(ContainerServiceArgs(*head("prometheus", "prometheus"),
                networks=[edge, data], user=NOBODY,
                command=[f"--config.file={mon.PROMETHEUS_DIR}/prometheus.yml",
                         "--storage.tsdb.path=/prometheus",
                         f"--storage.tsdb.retention.time={args.retention_days}d",
                         # Retention by size too, so a burst of series cannot fill the host's data
                         # volume: a cap, not a forecast (time is the rule), of DISK_GB_PER_MEMORY_GB.
                         f"--storage.tsdb.retention.size={max(1, limits.memory_mb * DISK_GB_PER_MEMORY_GB // 1024)}GB",
                         f"--web.listen-address=:{mon.PROMETHEUS_PORT}"],
                # The Go runtime collects before the container limit is hit.
                env={"GOMEMLIMIT": f"{limits.memory_mb * 9 // 10}MiB"},
                files=[ConfigFile(f"{mon.PROMETHEUS_DIR}/prometheus.yml", mon.prometheus_yml(
                           mon.PrometheusSettings(stack=args.stack, targets=args.app_targets))),
                       ConfigFile(f"{mon.RULES_DIR}/alerts.yml", mon.alert_rules()),
                       ConfigFile(f"{mon.RULES_DIR}/certificates.yml", rules),
                       ConfigFile(f"{mon.RULES_DIR}/access-keys.yml", key_rules)],
                volumes=[VolumeMount(prometheus_data.name, "/prometheus")],
                tmpfs=TMP,
                healthcheck=_http_check(mon.PROMETHEUS_PORT, "/-/healthy"),
                stop_timeout=60))

        grafana_data = named_volume(f"{name}-grafana-data", f"{prefix}-grafana-data", labels, self,
                                    keep=args.protect_data)
        add(ContainerServiceArgs(*head("grafana", "grafana"),
                networks=[edge], user="472:0",
                env={"GF_SECURITY_ADMIN_USER": "admin",
                     "GF_SECURITY_ADMIN_PASSWORD__FILE": f"{SECRETS_DIR}/grafana-admin-password",
                     "GF_SERVER_ROOT_URL": args.grafana_url + "/",
                     "GF_PATHS_PROVISIONING": mon.GRAFANA_PROVISIONING,
                     "GF_USERS_ALLOW_SIGN_UP": "false",
                     "GF_AUTH_ANONYMOUS_ENABLED": "false",
                     "GF_SECURITY_COOKIE_SECURE": "true",
                     "GF_SECURITY_DISABLE_GRAVATAR": "true",
                     "GF_ANALYTICS_REPORTING_ENABLED": "false",
                     "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
                     "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES": "false",
                     # The news drawer fetches grafana.com from the browser, which the edge's
                     # CSP does not admit (configs/nginx.py).
                     "GF_NEWS_NEWS_FEED_ENABLED": "false",
                     # No plugin downloads at start: the container needs nothing from outside.
                     "GF_PLUGINS_PREINSTALL_DISABLED": "true",
                     "GF_LOG_MODE": "console"},
                files=[ConfigFile(f"{SECRETS_DIR}/grafana-admin-password", args.grafana_admin_password,
                                  mode="0400", secret=True),
                       ConfigFile(f"{mon.GRAFANA_PROVISIONING}/datasources/prometheus.yml", mon.grafana_datasource()),
                       ConfigFile(f"{mon.GRAFANA_PROVISIONING}/dashboards/storiesofsoftware.yml",
                                  mon.grafana_dashboard_provider()),
                       ConfigFile(f"{mon.GRAFANA_DASHBOARDS}/overview.json", mon.grafana_dashboard())],
                # Grafana reads every provisioning folder and logs an error for each that is missing.
                config_trees={mon.GRAFANA_PROVISIONING: mon.GRAFANA_PROVISIONING_EMPTY},
                volumes=[VolumeMount(grafana_data.name, "/var/lib/grafana")],
                tmpfs=TMP,
                healthcheck=_http_check(mon.GRAFANA_PORT, "/api/health"),
                depends_on=self.services["prometheus"].containers))
        self._grafana_admin_password(name, args)
        self.register_outputs({})

    def _grafana_admin_password(self, name: str, args: MonitoringArgs) -> None:
        """Grafana reads its admin password only when it creates the admin user, on a new data
        volume; after that a new one must be set through its CLI (docs/security.md). Run after
        every new container or password, from stdin: never on a command line."""
        (container,) = self.services["grafana"].containers
        args.runtime.commands.run(
            f"{name}-grafana-admin-password",
            create=container.name.apply(lambda c: (
                f"docker exec -i {shlex.quote(c)} grafana cli --homepath /usr/share/grafana "
                "admin reset-admin-password --password-from-stdin")),
            # Its messages, never the password (which comes on stdin), so that a failure says why.
            logging=SHOWN,
            stdin=pulumi.Output.secret(args.grafana_admin_password.apply(lambda p: p + "\n")),
            triggers=[container.id, pulumi.Output.secret(args.grafana_admin_password.apply(
                lambda p: hashlib.sha256(p.encode()).hexdigest()))],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[container]))
