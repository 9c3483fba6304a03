"""The platform as Docker containers: on the local engine (dev) or an EC2 host (staging,
production with `placement: host`). The placement object (placements/) supplies the engine, TLS,
object storage and backups' destination; everything else is the same on both."""

import pulumi

import placements
from components.api import Api, ApiArgs
from components.backups import Backups, BackupsArgs
from components.container_networks import ContainerNetworks, ContainerNetworksArgs
from components.edge_proxy import EdgeProxy, EdgeProxyArgs
from components.frontend import Frontend, FrontendArgs
from components.n8n import N8n, N8nArgs
from components.platform_secrets import PlatformSecrets, PlatformSecretsArgs
from components.postgres import Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from configs import monitoring as monitoring_config
from configs import nginx as nginx_config
from platforms import outputs
from services import api as api_service
from services import edge as edge_service
from services import frontend as frontend_service
from services import n8n as n8n_service
from services.spec import Wiring
from settings import Settings


def build(cfg: Settings) -> None:
    """Compose the platform's containers on the stack's Docker engine and export the outputs."""
    edge_hostnames = list(nginx_config.edge_hosts(cfg.domain, n8n=cfg.features.n8n,
                                                 grafana=cfg.features.monitoring).values())

    placement_kind = placements.kind_for(cfg)
    secrets = PlatformSecrets("secrets", PlatformSecretsArgs(
        with_minio=placement_kind.runs_minio, protect=cfg.is_production))
    where = placement_kind(cfg, secrets, edge_hostnames)
    runtime = where.services
    on_docker = pulumi.ResourceOptions(providers={"docker": where.provider})
    networks = ContainerNetworks("networks", ContainerNetworksArgs(
        name_prefix=cfg.name_prefix, labels=cfg.labels, with_egress=where.needs_egress, edge_subnet=cfg.edge_subnet),
        opts=on_docker)
    storage = where.object_storage(networks)

    postgres = Postgres("postgres", PostgresArgs(
        runtime=runtime,
        image=cfg.images["postgres"],
        limits=cfg.limits["postgres"],
        data_network=networks.data.name,
        superuser_password=secrets.values["postgresSuperuser"],
        app_password=secrets.values["postgresApp"],
        n8n_password=secrets.values["postgresN8n"],
        monitoring_password=secrets.values["postgresMonitoring"],
        protect_data=cfg.is_production,
        protect_container=cfg.is_production and not cfg.allow_data_replacement,
        archive=where.archive(networks),
    ), opts=on_docker)

    redis = Redis("redis", RedisArgs(
        runtime=runtime,
        image=cfg.images["redis"],
        limits=cfg.limits["redis"],
        data_network=networks.data.name,
        password=secrets.values["redis"],
        protect_data=cfg.is_production,
        protect_container=cfg.is_production and not cfg.allow_data_replacement,
    ), opts=on_docker)

    backups = Backups("backups", BackupsArgs(
        runtime=runtime,
        limits=cfg.limits["backup"],
        postgres=postgres,
        redis_volume=redis.volume.name,
        networks=[networks.data.name] + ([networks.egress.name] if networks.egress else []),
        offsite=where.offsite(),
        minio_volume=where.backup_extra_volume(),
        depends_on=[*redis.ready, *where.stores_ready()],
    ), opts=on_docker)

    site_url, api_url = cfg.origin(), cfg.origin("api")
    stores_ready = [*postgres.ready, *redis.ready, *where.stores_ready()]

    wiring = Wiring(storage=storage, database_url=postgres.app_database_url, redis_url=redis.url,
                    postgres_host=postgres.host)
    api_spec = api_service.service(cfg, wiring, secrets.values["jwtAccess"], secrets.values["jwtRefresh"])
    api = Api("api", ApiArgs(
        runtime=runtime,
        spec=api_spec,
        migrate=api_service.migrate(cfg),
        indexes=api_service.indexes(cfg),
        replicas=cfg.api_replicas,
        edge_network=networks.edge.name,
        data_network=networks.data.name,
        rollout_batch=cfg.rollout_batch,
        depends_on=stores_ready,
    ), opts=on_docker)

    frontend = Frontend("frontend", FrontendArgs(
        runtime=runtime,
        spec=frontend_service.service(cfg, wiring),
        replicas=cfg.frontend_replicas,
        edge_network=networks.edge.name,
        rollout_batch=cfg.rollout_batch,
        depends_on=api.ready,
    ), opts=on_docker)

    n8n_upstream = None
    if cfg.features.n8n:
        (n8n_spec,) = n8n_service.processes(cfg, wiring, secrets.values["postgresN8n"],
                                            secrets.values["n8nEncryptionKey"])
        n8n = N8n("n8n", N8nArgs(
            runtime=runtime,
            spec=n8n_spec,
            edge_network=networks.edge.name,
            data_network=networks.data.name,
            protect_data=cfg.is_production,
            depends_on=postgres.ready,
        ), opts=on_docker)
        n8n_upstream = n8n.upstream

    edge = EdgeProxy("edge", EdgeProxyArgs(
        runtime=runtime,
        spec=edge_service.service(cfg),
        edge_network=networks.edge.name,
        config=nginx_config.EdgeConfig(
            domain=cfg.domain,
            n8n_server=n8n_upstream,
            grafana_server=monitoring_config.GRAFANA_UPSTREAM if cfg.features.monitoring else None,
            # dev: the developer's browser arrives from the edge network's gateway (the port is
            # published on 127.0.0.1 only, so nobody else reaches it that way).
            admin_cidrs=[*cfg.admin_cidrs, *([f"{networks.host_gateway}/32"] if networks.host_gateway else [])],
            real_ip_from=where.real_ip_from,
            client_ca=where.tls.client_ca_pem is not None,
            hsts_max_age=where.hsts_max_age,
            public_https_port=cfg.edge_ports.https,
        ),
        api_servers=api.upstreams,
        frontend_servers=frontend.upstreams,
        bind_address=where.bind_address,
        published_ports=cfg.edge_ports,
        cert_pem=where.tls.cert_pem,
        key_pem=where.tls.key_pem,
        client_ca_pem=where.tls.client_ca_pem,
    ), opts=on_docker)

    if cfg.features.monitoring:
        from components.monitoring import Monitoring, MonitoringArgs

        app_targets = monitoring_config.ScrapeTargets(
            api=api.scrape_targets if cfg.features.app_metrics else (),
            frontend=frontend.scrape_targets if cfg.features.app_metrics else (),
            grafana=monitoring_config.GRAFANA_UPSTREAM)
        Monitoring("monitoring", MonitoringArgs(
            runtime=runtime,
            stack=cfg.stack,
            images=cfg.images,
            limits=cfg.limits,
            retention_days=cfg.metrics_retention_days,
            edge_network=networks.edge.name,
            data_network=networks.data.name,
            grafana_url=cfg.origin("grafana"),
            grafana_admin_password=secrets.values["grafanaAdmin"],
            monitoring_password=secrets.values["postgresMonitoring"],
            redis_password=secrets.values["redis"],
            nginx_status_url=f"http://nginx:{nginx_config.STATUS_PORT}{nginx_config.STATUS_PATH}",
            backup_metrics_volume=backups.metrics_volume.name,
            app_targets=app_targets,
            certificate_expiries=where.tls.expiries,
            access_keys_created=where.access_keys.created,
            key_rotation_days=where.access_keys.rotation_days,
            protect_data=cfg.is_production,
            depends_on=[*postgres.ready, *redis.ready, *edge.ready],
        ), opts=on_docker)

    outputs.export_contract(outputs.Contract(
        site_url=site_url, api_url=api_url, n8n_url=cfg.origin("n8n"),
        grafana_url=cfg.origin("grafana"),
        buckets=storage.buckets, s3_endpoint=storage.endpoint, s3_region=storage.region,
        database_url=postgres.app_database_url, redis_url=redis.url, extra=where.outputs()))
