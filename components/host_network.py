"""staging/production: a dedicated VPC with one public subnet and the host's security group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

VPC_CIDR = "10.42.0.0/16"
PUBLIC_SUBNET_CIDR = "10.42.1.0/24"


@dataclass
class HostNetworkArgs:
    name_prefix: str
    # Who may open 80/443. The edge narrows this to Cloudflare's published ranges.
    web_ingress_cidrs: Sequence[str]
    admin_cidrs: Sequence[str]
    # `arn:aws:s3:::<log bucket>/<prefix>/` of the hardened log bucket.
    flow_log_destination: pulumi.Input[str]
    flow_log_ready: Sequence[pulumi.Resource] = ()


class HostNetwork(pulumi.ComponentResource):
    vpc: aws.ec2.Vpc
    subnet: aws.ec2.Subnet
    security_group: aws.ec2.SecurityGroup
    availability_zone: pulumi.Output[str]

    def __init__(self, name: str, args: HostNetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:HostNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self))
        self.availability_zone = zones.names[0]

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=VPC_CIDR, enable_dns_support=True,
            enable_dns_hostnames=True, tags={"Name": f"{args.name_prefix}-vpc"}, opts=child)
        audited_and_closed(name, self, self.vpc, args.name_prefix, args.flow_log_destination, args.flow_log_ready)
        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags={"Name": f"{args.name_prefix}-igw"}, opts=child)
        self.subnet = aws.ec2.Subnet(
            f"{name}-public", vpc_id=self.vpc.id, cidr_block=PUBLIC_SUBNET_CIDR,
            availability_zone=self.availability_zone,
            # The host gets its address from an Elastic IP on its network interface.
            map_public_ip_on_launch=False,
            tags={"Name": f"{args.name_prefix}-public"}, opts=child)
        routes = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": f"{args.name_prefix}-public-rt"}, opts=child)
        aws.ec2.RouteTableAssociation(
            f"{name}-public-rta", subnet_id=self.subnet.id, route_table_id=routes.id, opts=child)

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-host-sg", vpc_id=self.vpc.id,
            description="Docker host: web from the edge's sources, SSH from admin networks",
            tags={"Name": f"{args.name_prefix}-host"}, opts=child)
        # One rule resource per (port, source): changing one source does not churn the others,
        # and inline rules plus rule resources on one group fight each other.
        for port in (80, 443):
            for i, cidr in enumerate(args.web_ingress_cidrs):
                self._ingress(f"{name}-web{port}-{i}", port, cidr, f"web {port}")
        for i, cidr in enumerate(args.admin_cidrs):
            self._ingress(f"{name}-ssh-{i}", 22, cidr, "SSH from an admin network")
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-egress-v4", security_group_id=self.security_group.id, ip_protocol="-1",
            cidr_ipv4="0.0.0.0/0", description="image pulls, package updates, S3, APIs", opts=child)
        self.register_outputs({})

    def _ingress(self, name: str, port: int, cidr: str, description: str) -> None:
        aws.vpc.SecurityGroupIngressRule(
            name, security_group_id=self.security_group.id, ip_protocol="tcp",
            from_port=port, to_port=port, description=description, **cidr_family(cidr),
            opts=pulumi.ResourceOptions(parent=self))


def cidr_family(cidr: str) -> dict[str, str]:
    """A security group rule's source: `cidr_ipv4` or `cidr_ipv6`, as the address says."""
    return {"cidr_ipv6": cidr} if ":" in cidr else {"cidr_ipv4": cidr}


def audited_and_closed(name: str, parent: pulumi.Resource, vpc: aws.ec2.Vpc, tag_prefix: str,
                       flow_log_destination: pulumi.Input[str], flow_log_ready: Sequence[pulumi.Resource]) -> None:
    """What every VPC of the platform gets: a flow log and a default security group with no rule."""
    # Every accepted and rejected flow: the network trail of an incident on a platform that runs
    # user-defined automations. To S3 (no delivery role, kept by the bucket's lifecycle).
    aws.ec2.FlowLog(
        f"{name}-flow-log", vpc_id=vpc.id, traffic_type="ALL",
        log_destination_type="s3", log_destination=flow_log_destination,
        # One-minute records: a short connection is still placed within its minute.
        max_aggregation_interval=60,
        destination_options=aws.ec2.FlowLogDestinationOptionsArgs(
            file_format="plain-text", per_hour_partition=True, hive_compatible_partitions=False),
        tags={"Name": f"{tag_prefix}-flow-log"},
        # The bucket policy that admits the delivery service first, or AWS would attach one of
        # its own that the next update overwrites.
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(flow_log_ready)))
    # The VPC's default group allows all traffic between its members; nothing here uses it,
    # so strip it of every rule rather than leave it as a trap for a later resource.
    aws.ec2.DefaultSecurityGroup(
        f"{name}-default-sg", vpc_id=vpc.id, ingress=[], egress=[],
        tags={"Name": f"{tag_prefix}-default-locked"}, opts=pulumi.ResourceOptions(parent=parent))
