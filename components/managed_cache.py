"""The cluster placement's Redis 7 (issue 19): an ElastiCache replication group.

Encrypted at rest and in transit, an AUTH token (generated, secret), automatic failover across
zones in production, daily snapshots, reachable from the platform's tasks only, and the same
eviction policy as the host's redis.conf.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.cluster_network import reachable_from
from configs import redis as redis_config
from configs.secrets import keepers

ENGINE_VERSION = "7.1"
PARAMETER_FAMILY = "redis7"


@dataclass
class ManagedCacheArgs:
    name_prefix: str
    node_type: str
    # production: a replica in another zone that takes over by itself.
    failover: bool
    snapshot_retention_days: int
    subnet_ids: Sequence[pulumi.Input[str]]
    vpc_id: pulumi.Input[str]
    client_security_group_ids: Sequence[pulumi.Input[str]]
    protect: bool
    maxmemory_policy: str = redis_config.MAXMEMORY_POLICY
    # `secretGenerations.redis`: a new generation is a new AUTH token.
    token_generation: int = 0


class ManagedCache(pulumi.ComponentResource):
    group: aws.elasticache.ReplicationGroup
    security_group: aws.ec2.SecurityGroup
    ready: list[pulumi.Resource]
    auth_token: pulumi.Output[str]

    def __init__(self, name: str, args: ManagedCacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ManagedCache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        subnets = aws.elasticache.SubnetGroup(f"{name}-subnets", subnet_ids=list(args.subnet_ids),
                                              description=f"{prefix} Redis: private subnets", opts=child)
        self.security_group, admitted = reachable_from(name, self, args.vpc_id, redis_config.PORT, "Redis", f"{prefix}-redis",
                                             args.client_security_group_ids)
        parameters = aws.elasticache.ParameterGroup(
            # A fixed description: changing it replaces the group.
            f"{name}-params", family=PARAMETER_FAMILY, description=f"{prefix}: eviction policy",
            parameters=[aws.elasticache.ParameterGroupParameterArgs(
                name="maxmemory-policy", value=args.maxmemory_policy)], opts=child)
        # ElastiCache's AUTH token: 16 to 128 printable characters, none of @ " /.
        # Not protected: a rotation replaces it.
        token = random.RandomPassword(
            f"{name}-auth-token", length=64, special=False,
            keepers=keepers(args.token_generation),
            opts=pulumi.ResourceOptions(parent=self))
        self.group = aws.elasticache.ReplicationGroup(
            f"{name}-group", description=f"{prefix} Redis",
            engine="redis", engine_version=ENGINE_VERSION, node_type=args.node_type, port=redis_config.PORT,
            num_cache_clusters=2 if args.failover else 1,
            automatic_failover_enabled=args.failover, multi_az_enabled=args.failover,
            subnet_group_name=subnets.name, security_group_ids=[self.security_group.id],
            parameter_group_name=parameters.name,
            at_rest_encryption_enabled=True, transit_encryption_enabled=True, auth_token=pulumi.Output.secret(token.result),
            # No update strategy: AWS's default, ROTATE, adds a new token beside the old one, which
            # stays valid while the tasks roll onto the new; deploy/cache_token.py revokes it
            # (docs/security.md). Naming it would send the unchanged token once more on the next up.
            snapshot_retention_limit=args.snapshot_retention_days, snapshot_window="01:00-02:00",
            maintenance_window="sun:04:30-sun:05:30", auto_minor_version_upgrade=True,
            tags={"Name": f"{prefix}-redis"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect))
        # Through the group: whoever takes the token waits until ElastiCache accepts it.
        self.auth_token = pulumi.Output.secret(pulumi.Output.all(self.group.id, token.result).apply(lambda v: v[1]))
        # Reachable: the server and the rule that admits the tasks.
        self.ready = [self.group, *admitted]
        self.register_outputs({})
