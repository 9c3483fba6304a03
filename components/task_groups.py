"""The cluster's task security groups (issue 19): who may talk to whom.

    load balancer -> edge (its HTTP and health ports)
    edge -> apps (the API, the frontend, n8n's main and webhook processes)
    apps -> PostgreSQL, Redis (their own groups admit the apps group only: cluster_network.reachable_from)

Egress is named too: Terraform, and so pulumi-aws, removes the allow-all rule AWS gives a new
group, so a task reaches only what a rule below lets it.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from configs import n8n as n8n_config
from configs import nginx as nginx_config
from configs import postgres as pg
from configs import redis as redis_config
from services import api, frontend

APP_PORTS = (frontend.PORT, api.PORT, n8n_config.PORT)
EDGE_PORTS = (nginx_config.HTTP_PORT, nginx_config.HEALTH_PORT)


class TaskGroups(pulumi.ComponentResource):
    edge: aws.ec2.SecurityGroup
    apps: aws.ec2.SecurityGroup
    # Every rule: a task started before its egress rule could not pull its image.
    ready: list[pulumi.Resource]

    def __init__(self, name: str, vpc_id: pulumi.Input[str], vpc_cidr: str, load_balancer_group: pulumi.Input[str],
                 name_prefix: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:TaskGroups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.ready = []
        self.edge = aws.ec2.SecurityGroup(f"{name}-edge", vpc_id=vpc_id, description="Edge tasks: from the load balancer",
                                          tags={"Name": f"{name_prefix}-edge"}, opts=child)
        self.apps = aws.ec2.SecurityGroup(f"{name}-apps", vpc_id=vpc_id,
                                          description="Application tasks: from the edge and each other",
                                          tags={"Name": f"{name_prefix}-apps"}, opts=child)

        def ingress(rule: str, group: aws.ec2.SecurityGroup, port: int, source: pulumi.Input[str], why: str) -> None:
            self.ready.append(aws.vpc.SecurityGroupIngressRule(
                f"{name}-{rule}", security_group_id=group.id, ip_protocol="tcp", from_port=port, to_port=port,
                referenced_security_group_id=source, description=why, opts=child))

        def egress(rule: str, group: aws.ec2.SecurityGroup, port: int, why: str, *, cidr: str | None = None,
                   target: pulumi.Input[str] | None = None) -> None:
            self.ready.append(aws.vpc.SecurityGroupEgressRule(
                f"{name}-{rule}", security_group_id=group.id, ip_protocol="tcp", from_port=port, to_port=port,
                cidr_ipv4=cidr, referenced_security_group_id=target, description=why, opts=child))

        for port in EDGE_PORTS:
            ingress(f"edge-from-lb-{port}", self.edge, port, load_balancer_group, "from the load balancer")
        for port in APP_PORTS:
            ingress(f"apps-from-edge-{port}", self.apps, port, self.edge.id, "from the edge")
            # Server-side rendering calls the API by name; n8n's processes call each other.
            ingress(f"apps-from-apps-{port}", self.apps, port, self.apps.id, "from the other applications")
            egress(f"edge-to-apps-{port}", self.edge, port, "to the applications", target=self.apps.id)
            egress(f"apps-to-apps-{port}", self.apps, port, "to the other applications", target=self.apps.id)
        for group, who in ((self.edge, "edge"), (self.apps, "apps")):
            # Image pulls, logs and secrets (the VPC's endpoints), S3 (its gateway endpoint's
            # public addresses), and for the applications the APIs they call (mail, payments,
            # n8n's workflows) through NAT.
            egress(f"{who}-https", group, 443, "HTTPS: AWS endpoints, S3, external APIs", cidr="0.0.0.0/0")
        egress("apps-http", self.apps, 80, "HTTP: what n8n's workflows call", cidr="0.0.0.0/0")
        egress("apps-postgres", self.apps, pg.PORT, "to PostgreSQL", cidr=vpc_cidr)
        egress("apps-redis", self.apps, redis_config.PORT, "to Redis", cidr=vpc_cidr)
        self.register_outputs({})
