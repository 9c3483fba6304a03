"""Stories of Software: one resource graph per stack.

This file only builds settings, composes components and exports outputs.
"""

import pulumi

import settings as platform_settings
from components.api import PORT as API_PORT
from components.api import Api, ApiArgs
from components.backups import Backups, BackupsArgs, OffsiteTarget
from components.container_networks import ContainerNetworks, ContainerNetworksArgs
from components.container_service import Placement
from components.edge_proxy import EdgeProxy, EdgeProxyArgs
from components.frontend import PORT as FRONTEND_PORT
from components.frontend import Frontend, FrontendArgs
from components.n8n import PORT as N8N_PORT
from components.n8n import N8n, N8nArgs
from components.platform_secrets import PlatformSecrets, PlatformSecretsArgs
from components.postgres import POSIX_REPO_DIR, ArchiveArgs, Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from configs import backup as backup_config
from configs import monitoring as monitoring_config
from configs import nginx as nginx_config

cfg = platform_settings.load()
edge_hostnames = [cfg.hostname(sub) for sub in ("", "www", "api", "n8n", "grafana")
                  if sub != "n8n" or cfg.features.n8n
                  if sub != "grafana" or cfg.features.monitoring]

secrets = PlatformSecrets("secrets", PlatformSecretsArgs(
    with_minio=not cfg.is_cloud, protect=cfg.is_production))

if cfg.is_cloud:
    # Imported here so that dev never loads the AWS SDK.
    import pulumi_aws as aws
    import pulumi_cloudflare as cloudflare

    from components.cloudflare_edge import CloudflareEdge, CloudflareEdgeArgs, ip_ranges
    from components.docker_host import DockerHost, DockerHostArgs
    from components.host_network import HostNetwork, HostNetworkArgs
    from components.object_storage import ObjectStorage, ObjectStorageArgs

    aws_provider = aws.Provider("aws", region=cfg.aws_region,
                                default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.labels))
    on_aws = pulumi.ResourceOptions(providers={"aws": aws_provider})
    # The API token comes from CLOUDFLARE_API_TOKEN in the environment, never from state.
    cloudflare_provider = cloudflare.Provider("cloudflare")
    cloudflare_ranges = ip_ranges(cloudflare_provider)
    network = HostNetwork("network", HostNetworkArgs(
        name_prefix=cfg.name_prefix,
        # Only Cloudflare reaches 80/443; everything else is dropped at the security group.
        web_ingress_cidrs=cloudflare_ranges.all,
        admin_cidrs=cfg.admin_cidrs,
    ), opts=on_aws)
    host = DockerHost("host", DockerHostArgs(
        stack=cfg.stack,
        name_prefix=cfg.name_prefix,
        instance_type=cfg.instance_type,
        root_volume_gb=cfg.root_volume_gb,
        data_volume_gb=cfg.data_volume_gb,
        snapshot_retention_days=cfg.snapshot_retention_days,
        protect_data=cfg.is_production,
        subnet_id=network.subnet.id,
        security_group_id=network.security_group.id,
        availability_zone=network.availability_zone,
        registry=cfg.registry,
    ), opts=on_aws)
    storage = ObjectStorage("storage", ObjectStorageArgs(
        name_prefix=cfg.name_prefix,
        region=cfg.aws_region,
        site_origins=[f"https://{cfg.hostname()}", f"https://{cfg.hostname('www')}"],
        noncurrent_days=cfg.backup_retention_days,
        protect=cfg.is_production,
        backup_retention_days=cfg.backup_retention_days,
        lock_backups=cfg.is_production,
    ), opts=on_aws)
    edge_dns = CloudflareEdge("cdn", CloudflareEdgeArgs(
        zone=cfg.cloudflare_zone,
        domain=cfg.domain,
        hostnames=edge_hostnames,
        origin_ip=host.public_ip,
        manage_zone=cfg.manages_zone,
    ), opts=pulumi.ResourceOptions(providers={"cloudflare": cloudflare_provider}))
    tls_cert, tls_key, client_ca = edge_dns.origin_cert_pem, edge_dns.origin_key_pem, edge_dns.client_ca_pem
    # One Origin CA certificate covers every edge host name.
    cert_expiries = edge_dns.origin_cert_expires.apply(lambda at: {host: at for host in edge_hostnames})
    pulumi.export("hostPublicIp", host.public_ip)
    pulumi.export("cloudflareZoneId", edge_dns.zone_id)
else:
    from components.local_docker_host import LocalDockerHost, LocalDockerHostArgs
    from components.self_signed_tls import SelfSignedTls, SelfSignedTlsArgs

    host = LocalDockerHost("host", LocalDockerHostArgs(cfg.docker_host, cfg.registry))
    dev_tls = SelfSignedTls("tls", SelfSignedTlsArgs(cfg.domain, edge_hostnames))
    tls_cert, tls_key, client_ca = dev_tls.cert_pem, dev_tls.key_pem, None
    cert_expiries = dev_tls.cert_expires.apply(lambda at: {host: at for host in edge_hostnames})

on_docker = pulumi.ResourceOptions(providers={"docker": host.provider})
placement = Placement(cfg.name_prefix, cfg.labels, host.commands)
networks = ContainerNetworks("networks", ContainerNetworksArgs(
    name_prefix=cfg.name_prefix, labels=cfg.labels, with_egress=cfg.is_cloud, edge_subnet=cfg.edge_subnet),
    opts=on_docker)

if cfg.is_cloud:
    backups_bucket = storage.buckets["backups"]
    # WAL and full backups: straight to the backups bucket, encrypted before they leave.
    archive = ArchiveArgs(
        repository=backups_bucket.apply(lambda bucket: backup_config.Repository(
            bucket=bucket, region=cfg.aws_region, endpoint=f"s3.{cfg.aws_region}.amazonaws.com",
            path="/pgbackrest")),
        cipher_pass=secrets.values["backupCipher"],
        s3_access_key_id=storage.backup_access_key_id,
        s3_secret_access_key=storage.backup_secret_access_key,
        egress_network=networks.egress.name,
    )
else:
    # dev's MinIO speaks plain HTTP, which pgBackRest's S3 client refuses: a volume instead.
    archive = ArchiveArgs(repository=backup_config.Repository.posix(POSIX_REPO_DIR),
                          cipher_pass=secrets.values["backupCipher"])

postgres = Postgres("postgres", PostgresArgs(
    placement=placement,
    image=cfg.images["postgres"],
    limits=cfg.limits["postgres"],
    data_network=networks.data.name,
    superuser_password=secrets.values["postgresSuperuser"],
    app_password=secrets.values["postgresApp"],
    n8n_password=secrets.values["postgresN8n"],
    monitoring_password=secrets.values["postgresMonitoring"],
    protect_data=cfg.is_production,
    archive=archive,
), opts=on_docker)

redis = Redis("redis", RedisArgs(
    placement=placement,
    image=cfg.images["redis"],
    limits=cfg.limits["redis"],
    data_network=networks.data.name,
    password=secrets.values["redis"],
    protect_data=cfg.is_production,
), opts=on_docker)

if not cfg.is_cloud:
    from components.local_object_storage import LocalObjectStorage, LocalObjectStorageArgs

    storage = LocalObjectStorage("storage", LocalObjectStorageArgs(
        placement=placement,
        image=cfg.images["minio"],
        client_image=cfg.images["minioClient"],
        limits=cfg.limits["minio"],
        client_limits=cfg.limits["minioClient"],
        data_network=networks.data.name,
        edge_network=networks.edge.name,
        root_password=secrets.values["minioRoot"],
    ), opts=on_docker)

if cfg.is_cloud:
    offsite = OffsiteTarget(
        url=backups_bucket.apply(lambda bucket: f"https://{bucket}.s3.{cfg.aws_region}.amazonaws.com"),
        region=cfg.aws_region,
        access_key_id=storage.backup_access_key_id,
        secret_access_key=storage.backup_secret_access_key,
    )
else:
    offsite = OffsiteTarget(url=f"{storage.endpoint}/{storage.buckets['backups']}", region=storage.region,
                            access_key_id=storage.access_key_id, secret_access_key=storage.secret_access_key)
backups = Backups("backups", BackupsArgs(
    placement=placement,
    limits=cfg.limits["backup"],
    postgres=postgres,
    redis_volume=redis.volume.name,
    networks=[networks.data.name] + ([networks.egress.name] if networks.egress else []),
    offsite=offsite,
    minio_volume=None if cfg.is_cloud else storage.volume.name,
    depends_on=[*redis.service.containers] + ([] if cfg.is_cloud else [storage.setup.run]),
), opts=on_docker)

site_url = f"https://{cfg.hostname()}"
api_url = f"https://{cfg.hostname('api')}"
stores_ready = [*postgres.service.containers, *redis.service.containers]
if not cfg.is_cloud:
    stores_ready.append(storage.setup.run)

api = Api("api", ApiArgs(
    placement=placement,
    image=cfg.images["api"],
    migration_image=cfg.images["postgres"],
    limits=cfg.limits["api"],
    migration_limits=cfg.limits["api"],
    replicas=cfg.api_replicas,
    edge_network=networks.edge.name,
    data_network=networks.data.name,
    site_url=site_url,
    database_url=postgres.app_database_url,
    redis_url=redis.url,
    jwt_access_secret=secrets.values["jwtAccess"],
    jwt_refresh_secret=secrets.values["jwtRefresh"],
    s3_endpoint=storage.endpoint,
    s3_region=storage.region,
    s3_force_path_style=storage.force_path_style,
    content_bucket=storage.buckets["content"],
    images_bucket=storage.buckets["images"],
    s3_access_key_id=storage.access_key_id,
    s3_secret_access_key=storage.secret_access_key,
    external_secrets=cfg.external_secrets,
    depends_on=stores_ready,
), opts=on_docker)

frontend = Frontend("frontend", FrontendArgs(
    placement=placement,
    image=cfg.images["frontend"],
    limits=cfg.limits["frontend"],
    replicas=cfg.frontend_replicas,
    edge_network=networks.edge.name,
    site_url=site_url,
    api_url=api_url,
    depends_on=api.service.containers,
), opts=on_docker)

if cfg.features.n8n:
    n8n = N8n("n8n", N8nArgs(
        placement=placement,
        image=cfg.images["n8n"],
        limits=cfg.limits["n8n"],
        edge_network=networks.edge.name,
        data_network=networks.data.name,
        host=cfg.hostname("n8n"),
        postgres_host=postgres.host,
        db_password=secrets.values["postgresN8n"],
        encryption_key=secrets.values["n8nEncryptionKey"],
        protect_data=cfg.is_production,
        depends_on=postgres.service.containers,
    ), opts=on_docker)

edge = EdgeProxy("edge", EdgeProxyArgs(
    placement=placement,
    image=cfg.images["nginx"],
    limits=cfg.limits["nginx"],
    edge_network=networks.edge.name,
    config=nginx_config.EdgeConfig(
        domain=cfg.domain,
        api_servers=[f"{name}:{API_PORT}" for name in api.service.aliases],
        frontend_servers=[f"{name}:{FRONTEND_PORT}" for name in frontend.service.aliases],
        n8n_server=f"n8n:{N8N_PORT}" if cfg.features.n8n else None,
        grafana_server=f"grafana:{monitoring_config.GRAFANA_PORT}" if cfg.features.monitoring else None,
        # dev: the developer's browser arrives from the edge network's gateway (the port is
        # published on 127.0.0.1 only, so nobody else reaches it that way).
        admin_cidrs=[*cfg.admin_cidrs, *([f"{networks.host_gateway}/32"] if networks.host_gateway else [])],
        real_ip_from=cloudflare_ranges.all if cfg.is_cloud else (),
        client_ca=cfg.is_cloud,
        # Chromium and Firefox ignore HSTS for localhost, so dev gets the real header too.
        hsts_max_age=63072000 if cfg.is_cloud else 31536000,
    ),
    bind_address="0.0.0.0" if cfg.is_cloud else "127.0.0.1",
    cert_pem=tls_cert,
    key_pem=tls_key,
    client_ca_pem=client_ca,
), opts=on_docker)

if cfg.features.monitoring:
    from components.monitoring import Monitoring, MonitoringArgs

    app_targets = monitoring_config.ScrapeTargets(
        api=[f"{alias}:{API_PORT}" for alias in api.service.aliases] if cfg.features.app_metrics else (),
        frontend=[f"{alias}:{FRONTEND_PORT}" for alias in frontend.service.aliases] if cfg.features.app_metrics else (),
        grafana=f"grafana:{monitoring_config.GRAFANA_PORT}")
    monitoring = Monitoring("monitoring", MonitoringArgs(
        placement=placement,
        stack=cfg.stack,
        images=cfg.images,
        limits=cfg.limits,
        retention_days=cfg.metrics_retention_days,
        edge_network=networks.edge.name,
        data_network=networks.data.name,
        grafana_url=f"https://{cfg.hostname('grafana')}",
        grafana_admin_password=secrets.values["grafanaAdmin"],
        monitoring_password=secrets.values["postgresMonitoring"],
        redis_password=secrets.values["redis"],
        nginx_status_url=f"http://nginx:{nginx_config.STATUS_PORT}{nginx_config.STATUS_PATH}",
        backup_metrics_volume=backups.metrics_volume.name,
        app_targets=app_targets,
        certificate_expiries=cert_expiries,
        depends_on=[*postgres.service.containers, *redis.service.containers, *edge.service.containers],
    ), opts=on_docker)

pulumi.export("siteUrl", site_url)
pulumi.export("apiUrl", api_url)
pulumi.export("n8nUrl", f"https://{cfg.hostname('n8n')}")
pulumi.export("grafanaUrl", f"https://{cfg.hostname('grafana')}")
pulumi.export("contentBucket", storage.buckets["content"])
pulumi.export("imagesBucket", storage.buckets["images"])
pulumi.export("backupBucket", storage.buckets["backups"])
pulumi.export("s3Endpoint", storage.endpoint)
pulumi.export("s3Region", storage.region)
pulumi.export("databaseUrl", postgres.app_database_url)
pulumi.export("redisUrl", redis.url)
if not cfg.is_cloud:
    # The contract's cloud-only outputs, named so a consumer can tell "absent" from "renamed".
    pulumi.export("absentOutputs", ["hostPublicIp", "cloudflareZoneId"])
