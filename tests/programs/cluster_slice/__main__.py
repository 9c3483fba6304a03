"""The parts of the cluster placement built so far (issue 19), composed on their own so their
graph can be tested before the placement is wired into the program."""

import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_tls as tls

# The repository's components, as the real program imports them from its own directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from components.cluster_entry import ClusterEntry, ClusterEntryArgs
from components.cluster_network import ClusterNetwork, ClusterNetworkArgs
from components.cluster_service import ClusterService, ClusterServiceArgs, Scaling
from components.container_service import node_http_check
from components.managed_cache import ManagedCache, ManagedCacheArgs
from components.managed_database import ManagedDatabase, ManagedDatabaseArgs
from configs import ecs

stack = pulumi.get_stack()
production = stack == "production"
on_aws = pulumi.ResourceOptions(providers={"aws": aws.Provider("aws", region="us-east-1")})
network_args = ClusterNetworkArgs(
    name_prefix=f"sos-{stack}", region="us-east-1", zones=3 if production else 2, nat_per_zone=production,
    flow_log_destination="arn:aws:s3:::sos-logs/flow-logs/")
network = ClusterNetwork("cluster", network_args, opts=on_aws)
tasks = aws.ec2.SecurityGroup("tasks-sg", vpc_id=network.vpc.id, description="the platform's tasks", opts=on_aws)
ManagedDatabase("postgres", ManagedDatabaseArgs(
    name_prefix=f"sos-{stack}", instance_class="db.t4g.medium" if production else "db.t4g.micro",
    allocated_storage_gb=50 if production else 20, multi_az=production,
    backup_retention_days=14 if production else 7, subnet_ids=[s.id for s in network.private_subnets],
    vpc_id=network.vpc.id, client_security_group_ids=[tasks.id], protect=production), opts=on_aws)
ManagedCache("redis", ManagedCacheArgs(
    name_prefix=f"sos-{stack}", node_type="cache.t4g.small" if production else "cache.t4g.micro",
    failover=production, snapshot_retention_days=7 if production else 1,
    subnet_ids=[s.id for s in network.private_subnets], vpc_id=network.vpc.id,
    client_security_group_ids=[tasks.id], protect=production), opts=on_aws)

# The ECS cluster and the API as its first service (the load balancer comes next; the target
# group is there for the service to register with).
cluster = aws.ecs.Cluster("cluster-ecs", settings=[aws.ecs.ClusterSettingArgs(
    name="containerInsights", value="enhanced")], opts=on_aws)
api_secret = aws.secretsmanager.Secret("api-secrets", name_prefix=f"sos-{stack}/api-",
                                       recovery_window_in_days=7, opts=on_aws)
api_target = aws.lb.TargetGroup("api-target", port=3001, protocol="HTTP", target_type="ip",
                                vpc_id=network.vpc.id, deregistration_delay=30,
                                health_check=aws.lb.TargetGroupHealthCheckArgs(path="/health", matcher="200"),
                                opts=on_aws)
ClusterService("api", ClusterServiceArgs(
    spec=ecs.TaskSpec(name="api", image="ghcr.io/storiesofsoftware/api:1.0.0", cpus=1.0, memory_mb=768,
                      user="1001:1001", port=3001, health_command=node_http_check(3001, "/health", start_period="60s").test,
                      log_group=f"/sos/{stack}/api", region="us-east-1",
                      environment={"NODE_ENV": "production", "PORT": "3001", "HOST": "0.0.0.0"},
                      stop_timeout=30),
    name_prefix=f"sos-{stack}", cluster_arn=cluster.arn, cluster_name=cluster.name,
    subnet_ids=[s.id for s in network.private_subnets], security_group_ids=[tasks.id],
    log_retention_days=30 if production else 14,
    scaling=Scaling(minimum=2 if production else 1, maximum=10 if production else 2),
    secrets={name: api_secret.arn.apply(lambda arn, key=key: f"{arn}:{key}::")
             for name, key in (("DATABASE_URL", "databaseUrl"), ("REDIS_URL", "redisUrl"))},
    secret_arns=[api_secret.arn], target_group_arn=api_target.arn), opts=on_aws)

# The way in. Stand-ins here for what the Cloudflare placement supplies: the Origin CA
# certificate and Cloudflare's origin-pull CA.
origin_key = tls.PrivateKey("origin-key", algorithm="ECDSA", ecdsa_curve="P256")
origin_cert = tls.SelfSignedCert("origin-cert", private_key_pem=origin_key.private_key_pem,
                                 subject=tls.SelfSignedCertSubjectArgs(common_name=f"{stack}.example.com"),
                                 validity_period_hours=24 * 365, allowed_uses=["server_auth"])
pull_ca = tls.SelfSignedCert("origin-pull-ca", private_key_pem=origin_key.private_key_pem,
                             subject=tls.SelfSignedCertSubjectArgs(common_name="origin-pull"),
                             validity_period_hours=24 * 365, is_ca_certificate=True, allowed_uses=["cert_signing"])
trust_bucket = aws.s3.Bucket("trust-bucket", bucket_prefix=f"sos-{stack}-trust-",
                             opts=pulumi.ResourceOptions.merge(on_aws, pulumi.ResourceOptions(protect=production)))
ClusterEntry("entry", ClusterEntryArgs(
    name_prefix=f"sos-{stack}", vpc_id=network.vpc.id, vpc_cidr=network_args.cidr,
    public_subnet_ids=[s.id for s in network.public_subnets], ingress_cidrs=["173.245.48.0/20", "2400:cb00::/32"],
    certificate_pem=origin_cert.cert_pem, private_key_pem=pulumi.Output.secret(origin_key.private_key_pem),
    client_ca_pem=pull_ca.cert_pem, trust_store_bucket=trust_bucket.bucket, target_port=8443,
    health_path="/healthz", protect=production), opts=on_aws)
