"""The parts of the cluster placement built so far (issue 19), composed on their own so their
graph can be tested before the placement is wired into the program."""

import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws

# The repository's components, as the real program imports them from its own directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from components.cluster_network import ClusterNetwork, ClusterNetworkArgs
from components.managed_cache import ManagedCache, ManagedCacheArgs
from components.managed_database import ManagedDatabase, ManagedDatabaseArgs

stack = pulumi.get_stack()
production = stack == "production"
on_aws = pulumi.ResourceOptions(providers={"aws": aws.Provider("aws", region="us-east-1")})
network = ClusterNetwork("cluster", ClusterNetworkArgs(
    name_prefix=f"sos-{stack}", region="us-east-1", zones=3 if production else 2, nat_per_zone=production,
    flow_log_destination="arn:aws:s3:::sos-logs/flow-logs/"), opts=on_aws)
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
