"""Stories of Software: one resource graph per stack.

This file only builds settings, composes components and exports outputs.
"""

import pulumi

import settings as platform_settings
from components.container_networks import ContainerNetworks, ContainerNetworksArgs
from components.platform_secrets import PlatformSecrets, PlatformSecretsArgs

cfg = platform_settings.load()

secrets = PlatformSecrets("secrets", PlatformSecretsArgs(
    with_minio=not cfg.is_cloud, protect=cfg.is_production))

if cfg.is_cloud:
    # Imported here so that dev never loads the AWS SDK.
    import pulumi_aws as aws

    from components.docker_host import DockerHost, DockerHostArgs
    from components.host_network import HostNetwork, HostNetworkArgs

    aws_provider = aws.Provider("aws", region=cfg.aws_region,
                                default_tags=aws.ProviderDefaultTagsArgs(tags=cfg.labels))
    on_aws = pulumi.ResourceOptions(providers={"aws": aws_provider})
    network = HostNetwork("network", HostNetworkArgs(
        name_prefix=cfg.name_prefix,
        web_ingress_cidrs=["0.0.0.0/0"],
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
    ), opts=on_aws)
    docker_provider = host.provider
    pulumi.export("hostPublicIp", host.public_ip)
    pulumi.export("s3Region", cfg.aws_region)
else:
    from components.local_docker_host import LocalDockerHost, LocalDockerHostArgs

    docker_provider = LocalDockerHost("host", LocalDockerHostArgs(cfg.docker_host)).provider

on_docker = pulumi.ResourceOptions(providers={"docker": docker_provider})
networks = ContainerNetworks("networks", ContainerNetworksArgs(
    name_prefix=cfg.name_prefix, labels=cfg.labels), opts=on_docker)

pulumi.export("siteUrl", f"https://{cfg.hostname()}")
pulumi.export("apiUrl", f"https://{cfg.hostname('api')}")
pulumi.export("n8nUrl", f"https://{cfg.hostname('n8n')}")
pulumi.export("grafanaUrl", f"https://{cfg.hostname('grafana')}")
