"""The platform as Docker containers, on the local engine (dev) or an EC2 host (staging,
production with `placement: host`). The engine (placements/local.py, placements/host.py)
supplies the Docker provider, TLS, object storage and the backups' destination; the databases,
the services and the monitoring are the same on both."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pulumi

from components.api import Api, ApiArgs
from components.backups import Backups, BackupsArgs
from components.container_networks import ContainerNetworks, ContainerNetworksArgs
from components.edge_proxy import EdgeProxy, EdgeProxyArgs
from components.frontend import Frontend, FrontendArgs
from components.n8n import N8n, N8nArgs
from components.platform_secrets import PlatformSecrets
from components.postgres import Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from configs import monitoring as monitoring_config
from configs import nginx as nginx_config
from placements.base import DockerEngine, Running, check_steps, needs_ready
from services.spec import ServiceSpec, StepSpec, Wiring
from settings import Settings


class DockerPlacement:
    def __init__(self, cfg: Settings, secrets: PlatformSecrets, engine: type[DockerEngine]) -> None:
        self.cfg, self.secrets = cfg, secrets
        self.hostnames = list(nginx_config.edge_hosts(cfg.domain, n8n=cfg.features.n8n,
                                                      grafana=cfg.features.monitoring).values())
        where = self.engine = engine(cfg, secrets, self.hostnames)
        self.runtime = where.runtime
        self.on_docker = on_docker = pulumi.ResourceOptions(providers={"docker": where.provider})
        pw = secrets.values
        networks = self.networks = ContainerNetworks("networks", ContainerNetworksArgs(
            name_prefix=cfg.name_prefix, labels=cfg.labels, with_egress=where.needs_egress,
            edge_subnet=cfg.local.edge_subnet if cfg.local else None), opts=on_docker)
        self.storage = storage = where.object_storage(networks)
        # A replacement of a production database's container stops the server: refused unless
        # allowDataReplacement says it is meant.
        protect_container = cfg.is_production and not cfg.allow_data_replacement
        self.postgres = postgres = Postgres("postgres", PostgresArgs(
            runtime=self.runtime, image=cfg.images["postgres"], limits=cfg.limits["postgres"],
            data_network=networks.data.name,
            superuser_password=pw["postgresSuperuser"], app_password=pw["postgresApp"],
            n8n_password=pw["postgresN8n"], monitoring_password=pw["postgresMonitoring"],
            protect_data=cfg.is_production, protect_container=protect_container,
            archive=where.archive(networks),
        ), opts=on_docker)
        self.redis = redis = Redis("redis", RedisArgs(
            runtime=self.runtime, image=cfg.images["redis"], limits=cfg.limits["redis"],
            data_network=networks.data.name, password=pw["redis"],
            protect_data=cfg.is_production, protect_container=protect_container,
        ), opts=on_docker)
        self.backups = Backups("backups", BackupsArgs(
            runtime=self.runtime, limits=cfg.limits["backup"], postgres=postgres, redis_volume=redis.volume.name,
            networks=[networks.data.name] + ([networks.egress.name] if networks.egress else []),
            offsite=where.offsite(), minio_volume=where.backup_extra_volume(),
            depends_on=[*redis.ready, *where.stores_ready()],
        ), opts=on_docker)
        self.wiring = Wiring(storage=storage, database_url=postgres.app_database_url, redis_url=redis.url,
                             postgres_host=postgres.host)
        self.grafana_url = cfg.origin("grafana")
        self.running: dict[str, Running] = {}

    def run_service(self, spec: ServiceSpec, steps: Sequence[StepSpec] = (),
                    after: Sequence[Running] = ()) -> Running:
        check_steps(spec, steps)
        if steps and spec.name != "api":
            raise ValueError(f"{spec.name}: on Docker only the API's component runs steps")
        # Each service keeps its own component (its resources' names stay those of every
        # existing stack); all of them build their containers from the spec.
        build = _COMPONENTS[spec.name]
        stores = needs_ready(spec, {"database": self.postgres.ready, "cache": self.redis.ready,
                                    "storage": self.engine.stores_ready()})
        running = build(self, spec, list(steps), [*stores, *(r for a in after for r in a.ready)])
        self.running[spec.name] = running
        return running

    def _api(self, spec: ServiceSpec, steps: list[StepSpec], depends_on: list[pulumi.Resource]) -> Running:
        api = Api("api", ApiArgs(
            runtime=self.runtime, spec=spec, steps=steps, replicas=self.cfg.api_replicas,
            edge_network=self.networks.edge.name, data_network=self.networks.data.name,
            rollout_batch=self.cfg.rollout_batch, depends_on=depends_on), opts=self.on_docker)
        return Running(api.upstreams, api.ready, api.scrape_targets)

    def _frontend(self, spec: ServiceSpec, steps: list[StepSpec], depends_on: list[pulumi.Resource]) -> Running:
        frontend = Frontend("frontend", FrontendArgs(
            runtime=self.runtime, spec=spec, replicas=self.cfg.frontend_replicas,
            edge_network=self.networks.edge.name, rollout_batch=self.cfg.rollout_batch, depends_on=depends_on),
            opts=self.on_docker)
        return Running(frontend.upstreams, frontend.ready, frontend.scrape_targets)

    def _n8n(self, spec: ServiceSpec, steps: list[StepSpec], depends_on: list[pulumi.Resource]) -> Running:
        n8n = N8n("n8n", N8nArgs(
            runtime=self.runtime, spec=spec, edge_network=self.networks.edge.name,
            data_network=self.networks.data.name, protect_data=self.cfg.is_production, depends_on=depends_on),
            opts=self.on_docker)
        return Running([n8n.upstream], n8n.ready)

    def run_edge(self, spec: ServiceSpec, api: Running, frontend: Running,
                 n8n: Mapping[str, Running]) -> Running:
        cfg, where = self.cfg, self.engine
        host_gateway = self.networks.host_gateway
        edge = EdgeProxy("edge", EdgeProxyArgs(
            runtime=self.runtime, spec=spec, edge_network=self.networks.edge.name,
            config=nginx_config.EdgeConfig(
                domain=cfg.domain,
                n8n_server=n8n["n8n"].by_name() if n8n else None,
                grafana_server=monitoring_config.GRAFANA_UPSTREAM if cfg.features.monitoring else None,
                # dev: the developer's browser arrives from the edge network's gateway (the port
                # is published on 127.0.0.1 only, so nobody else reaches it that way).
                admin_cidrs=[*cfg.admin_cidrs, *([f"{host_gateway}/32"] if host_gateway else [])],
                real_ip_from=where.real_ip_from,
                client_ca=where.tls.client_ca_pem is not None,
                hsts_max_age=where.hsts_max_age,
                public_https_port=cfg.edge_ports.https,
            ),
            api_servers=api.upstreams, frontend_servers=frontend.upstreams,
            bind_address=where.bind_address, published_ports=cfg.edge_ports,
            cert_pem=where.tls.cert_pem, key_pem=where.tls.key_pem, client_ca_pem=where.tls.client_ca_pem,
        ), opts=self.on_docker)
        self.running[spec.name] = running = Running([], edge.ready)
        return running

    def observe(self) -> None:
        cfg = self.cfg
        if not cfg.features.monitoring:
            return
        from components.monitoring import Monitoring, MonitoringArgs

        api, frontend = self.running["api"], self.running["frontend"]
        app_targets = monitoring_config.ScrapeTargets(
            api=api.scrape_targets if cfg.features.app_metrics else (),
            frontend=frontend.scrape_targets if cfg.features.app_metrics else (),
            grafana=monitoring_config.GRAFANA_UPSTREAM)
        pw = self.secrets.values
        Monitoring("monitoring", MonitoringArgs(
            runtime=self.runtime, stack=cfg.stack, images=cfg.images, limits=cfg.limits,
            retention_days=cfg.metrics_retention_days,
            edge_network=self.networks.edge.name, data_network=self.networks.data.name,
            grafana_url=self.grafana_url, grafana_admin_password=pw["grafanaAdmin"],
            monitoring_password=pw["postgresMonitoring"], redis_password=pw["redis"],
            nginx_status_url=f"http://nginx:{nginx_config.STATUS_PORT}{nginx_config.STATUS_PATH}",
            backup_metrics_volume=self.backups.metrics_volume.name,
            app_targets=app_targets,
            certificate_expiries=self.engine.tls.expiries,
            access_keys_created=self.engine.access_keys.created,
            key_rotation_days=self.engine.access_keys.rotation_days,
            protect_data=cfg.is_production,
            depends_on=[*self.postgres.ready, *self.redis.ready, *self.running["edge"].ready],
        ), opts=self.on_docker)

    def outputs(self) -> Mapping[str, pulumi.Input[str]]:
        return self.engine.outputs()


_COMPONENTS: dict[str, Callable[[DockerPlacement, ServiceSpec, list[StepSpec], list[pulumi.Resource]], Running]] = {
    "api": DockerPlacement._api, "frontend": DockerPlacement._frontend, "n8n": DockerPlacement._n8n}
