"""The cluster placement's network (issue 19): a VPC over two or three availability zones.

Public subnets hold the load balancer and the NAT gateways only; tasks and data services live in
private subnets. AWS services the tasks call go through VPC endpoints (S3 as a free gateway
endpoint; ECR, CloudWatch Logs and Secrets Manager as interface endpoints); the rest of the
internet (n8n's automations, mail and payment APIs) through NAT. Flow logs as on the host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.host_network import audited_and_closed

CLUSTER_CIDR = "10.44.0.0/16"
# Interface endpoints: what an ECS task on Fargate needs to start (image pull, logs, secrets).
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """Public /24s for the load balancer and NAT (a few addresses each), private /20s for tasks
    and data (each Fargate task takes an address), carved so the two never overlap."""
    network = ipaddress.ip_network(vpc_cidr)
    if network.prefixlen > 18:
        raise ValueError(f"{vpc_cidr} is too small for {zones} zones (a /18 or larger holds a /20 per zone)")
    twenties = list(network.subnets(new_prefix=20))
    public = list(twenties[0].subnets(new_prefix=24))[:zones]
    private = twenties[1:1 + zones]
    if len(private) < zones:
        raise ValueError(f"{vpc_cidr} is too small for {zones} zones")
    return [str(p) for p in public], [str(p) for p in private]


@dataclass
class ClusterNetworkArgs:
    name_prefix: str
    region: str
    # Two on staging, three on production.
    zones: int
    # One NAT gateway per zone (production: losing a zone keeps the others' egress) or one shared.
    nat_per_zone: bool
    flow_log_destination: pulumi.Input[str]
    flow_log_ready: Sequence[pulumi.Resource] = ()
    cidr: str = CLUSTER_CIDR
    # The zones (names) where the data services' classes are offered; None: any available zone.
    # A zone name is the account's alias of a physical zone ID, and not every zone ID has every
    # class (us-east-1's use1-az3 lacks the newer Graviton ones): the first zones by name
    # can be one where RDS refuses the instance.
    offered_zones: pulumi.Input[Sequence[str]] | None = None


def choose_zones(available: Sequence[str], offered: Sequence[str] | None, wanted: int, region: str) -> list[str]:
    """The first `wanted` available zones that offer what the stack runs, or a clear error."""
    usable = [z for z in available if offered is None or z in set(offered)]
    if len(usable) < wanted:
        raise ValueError(f"{region}: {wanted} availability zones are needed and only {len(usable)} offer the "
                         f"database class ({', '.join(usable) or 'none'}); choose another class or region")
    return usable[:wanted]


class ClusterNetwork(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    public_subnets: list[aws.ec2.Subnet]
    private_subnets: list[aws.ec2.Subnet]
    # Admits HTTPS from inside the VPC to the interface endpoints.
    endpoint_security_group: aws.ec2.SecurityGroup
    # What a task needs before it starts (its image pull, its logs, its secrets): the private
    # routes out, the NAT gateways and the endpoints. The subnets alone exist before their routes.
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: ClusterNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ClusterNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        available = aws.get_availability_zones_output(
            state="available", filters=[aws.GetAvailabilityZonesFilterArgs(
                name="opt-in-status", values=["opt-in-not-required"])],  # no Local Zones
            opts=pulumi.InvokeOutputOptions(parent=self))
        chosen = pulumi.Output.all(available.names, args.offered_zones).apply(
            lambda v: choose_zones(v[0], v[1], args.zones, args.region))
        public_cidrs, private_cidrs = subnet_cidrs(args.cidr, args.zones)
        # The zones are chosen from AWS's answers at the first `pulumi up`; a later answer (a class
        # offered in one more zone) must not move a subnet, which replaces it and all in it.
        placed = pulumi.ResourceOptions(parent=self, ignore_changes=["availabilityZone"])

        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_support=True,
                               enable_dns_hostnames=True, tags={"Name": f"{prefix}-cluster"}, opts=child)
        audited_and_closed(name, self, self.vpc, f"{prefix}-cluster", args.flow_log_destination, args.flow_log_ready)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags={"Name": f"{prefix}-cluster"},
                                      opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{prefix}-cluster-public"}, opts=child)

        self.ready = []
        self.public_subnets, self.private_subnets = [], []
        nats: list[aws.ec2.NatGateway] = []
        private_tables: list[aws.ec2.RouteTable] = []
        for i in range(args.zones):
            zone = chosen.apply(lambda z, i=i: z[i])
            public = aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=public_cidrs[i], availability_zone=zone,
                map_public_ip_on_launch=False, tags={"Name": f"{prefix}-cluster-public-{i}", "tier": "public"},
                opts=placed)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}-rta", subnet_id=public.id,
                                          route_table_id=public_routes.id, opts=child)
            self.public_subnets.append(public)
            if args.nat_per_zone or i == 0:
                eip = aws.ec2.Eip(f"{name}-nat-{i}-eip", domain="vpc", tags={"Name": f"{prefix}-nat-{i}"},
                                  opts=child)
                nats.append(aws.ec2.NatGateway(
                    f"{name}-nat-{i}", allocation_id=eip.allocation_id, subnet_id=public.id,
                    tags={"Name": f"{prefix}-nat-{i}"}, opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
            private = aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=self.vpc.id, cidr_block=private_cidrs[i], availability_zone=zone,
                map_public_ip_on_launch=False, tags={"Name": f"{prefix}-cluster-private-{i}", "tier": "private"},
                opts=placed)
            table = aws.ec2.RouteTable(
                f"{name}-private-{i}-rt", vpc_id=self.vpc.id,
                # A zone's tasks leave through their own zone's NAT when there is one.
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0",
                                                    nat_gateway_id=nats[i if args.nat_per_zone else 0].id)],
                tags={"Name": f"{prefix}-cluster-private-{i}"}, opts=child)
            self.ready.append(aws.ec2.RouteTableAssociation(f"{name}-private-{i}-rta", subnet_id=private.id,
                                                            route_table_id=table.id, opts=child))
            self.private_subnets.append(private)
            private_tables.append(table)

        self.ready += nats
        # S3 (images, backups, the ECR layers ECR serves from S3): a gateway endpoint, free.
        s3 = aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[t.id for t in private_tables],
            tags={"Name": f"{prefix}-s3"}, opts=child)
        self.ready.append(s3)
        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg", vpc_id=self.vpc.id,
            description="Interface endpoints: HTTPS from inside the VPC",
            tags={"Name": f"{prefix}-endpoints"}, opts=child)
        self.ready.append(aws.vpc.SecurityGroupIngressRule(
            f"{name}-endpoints-https", security_group_id=self.endpoint_security_group.id, ip_protocol="tcp",
            from_port=443, to_port=443, cidr_ipv4=args.cidr, description="HTTPS from the VPC", opts=child))
        for service in INTERFACE_ENDPOINTS:
            self.ready.append(aws.ec2.VpcEndpoint(
                f"{name}-{service.replace('.', '-')}", vpc_id=self.vpc.id,
                service_name=f"com.amazonaws.{args.region}.{service}", vpc_endpoint_type="Interface",
                private_dns_enabled=True, subnet_ids=[s.id for s in self.private_subnets],
                security_group_ids=[self.endpoint_security_group.id],
                tags={"Name": f"{prefix}-{service}"}, opts=child))
        self.register_outputs({})


def reachable_from(name: str, parent: pulumi.Resource, vpc_id: pulumi.Input[str], port: int, what: str,
                   name_tag: str, clients: Sequence[pulumi.Input[str]],
                   ) -> tuple[aws.ec2.SecurityGroup, list[aws.vpc.SecurityGroupIngressRule]]:
    """A security group that admits `port` from the given client security groups only (the
    platform's tasks): how every data service of the cluster is reached."""
    child = pulumi.ResourceOptions(parent=parent)
    group = aws.ec2.SecurityGroup(f"{name}-sg", vpc_id=vpc_id, description=f"{what}: from the platform's tasks only",
                                  tags={"Name": name_tag}, opts=child)
    rules = [aws.vpc.SecurityGroupIngressRule(
        f"{name}-from-{i}", security_group_id=group.id, ip_protocol="tcp", from_port=port, to_port=port,
        referenced_security_group_id=client, description=f"{what} from the platform's tasks", opts=child)
        for i, client in enumerate(clients)]
    return group, rules
