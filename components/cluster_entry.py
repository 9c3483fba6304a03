"""The cluster placement's way in (issue 19): an Application Load Balancer that only Cloudflare
reaches, with the Cloudflare Origin CA certificate (imported into ACM) and Authenticated Origin
Pulls as ALB mutual TLS: a connection without Cloudflare's client certificate never reaches a
task. Behind it the edge (nginx, as a service) keeps the headers, rate limits and caching its
tests prove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.host_network import cidr_family
from components.object_storage import LOAD_BALANCER_LOG_PREFIX

# TLS 1.2 and 1.3 only, forward-secret suites (the ALB policy AWS recommends for new listeners).
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
TRUST_STORE_KEY = "trust-stores/cloudflare-origin-pull-ca.pem"


@dataclass
class ClusterEntryArgs:
    name_prefix: str
    vpc_id: pulumi.Input[str]
    # Where the tasks are: the only place the load balancer sends to.
    vpc_cidr: str
    public_subnet_ids: Sequence[pulumi.Input[str]]
    # Cloudflare's published ranges: the only sources the load balancer admits.
    ingress_cidrs: Sequence[str]
    certificate_pem: pulumi.Input[str]
    private_key_pem: pulumi.Output[str]
    # Cloudflare's origin-pull CA: the ALB asks every client for a certificate it signed.
    client_ca_pem: pulumi.Input[str]
    # A private bucket for the trust store's CA bundle (the log bucket serves).
    trust_store_bucket: pulumi.Input[str]
    # The edge's port on its tasks and the path the load balancer checks.
    target_port: int
    health_path: str
    protect: bool
    # Where the edge answers the health check, when not on `target_port`.
    health_port: int | None = None
    # Access logs (FSBP ELB.5) into this bucket's `alb/` prefix, once its policy admits them.
    access_log_bucket: pulumi.Input[str] | None = None
    access_log_ready: Sequence[pulumi.Resource] = ()


class ClusterEntry(pulumi.ComponentResource):
    load_balancer: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    listener: aws.lb.Listener
    certificate: aws.acm.Certificate
    security_group: aws.ec2.SecurityGroup
    # `app/<name>/<id>/targetgroup/<name>/<id>`: what request-count scaling names.
    request_label: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterEntryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ClusterEntry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = args.name_prefix
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg", vpc_id=args.vpc_id, description="Load balancer: HTTPS from Cloudflare only",
            tags={"Name": f"{prefix}-lb"}, opts=child)
        for i, cidr in enumerate(args.ingress_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-https-{i}", security_group_id=self.security_group.id, ip_protocol="tcp",
                from_port=443, to_port=443, description="HTTPS from Cloudflare", **cidr_family(cidr), opts=child)
        for port in sorted({args.target_port, args.health_port or args.target_port}):
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-to-targets" if port == args.target_port else f"{name}-to-target-health",
                security_group_id=self.security_group.id, ip_protocol="tcp",
                from_port=port, to_port=port, cidr_ipv4=args.vpc_cidr,
                description="to the edge's tasks", opts=child)

        self.certificate = certificate = aws.acm.Certificate(
            f"{name}-origin-certificate", certificate_body=args.certificate_pem,
            private_key=args.private_key_pem, tags={"Name": f"{prefix}-origin"},
            # A renewed certificate is imported beside the old one, which the listener lets go of.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False))
        bundle = aws.s3.BucketObjectv2(
            f"{name}-client-ca", bucket=args.trust_store_bucket, key=TRUST_STORE_KEY,
            content=args.client_ca_pem, content_type="application/x-pem-file", opts=child)
        trust_store = aws.lb.TrustStore(
            f"{name}-trust-store", ca_certificates_bundle_s3_bucket=args.trust_store_bucket,
            ca_certificates_bundle_s3_key=bundle.key, ca_certificates_bundle_s3_object_version=bundle.version_id,
            opts=child)

        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-lb", load_balancer_type="application", internal=False,
            subnets=list(args.public_subnet_ids), security_groups=[self.security_group.id],
            # Requests with malformed headers are dropped and desync attacks refused. Defensive,
            # not strictest: strictest also refuses merely ambiguous requests (RFC 7230 edge
            # cases some webhook senders produce); Security Hub's ELB.12 accepts either.
            drop_invalid_header_fields=True, desync_mitigation_mode="defensive",
            enable_deletion_protection=args.protect, idle_timeout=60,
            access_logs=aws.lb.LoadBalancerAccessLogsArgs(
                bucket=args.access_log_bucket, prefix=LOAD_BALANCER_LOG_PREFIX, enabled=True)
            if args.access_log_bucket is not None else None,
            tags={"Name": f"{prefix}-lb"},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=list(args.access_log_ready)))
        self.target_group = aws.lb.TargetGroup(
            f"{name}-edge", port=args.target_port, protocol="HTTP", target_type="ip", vpc_id=args.vpc_id,
            # Matches the edge's own drain on a deploy.
            deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                path=args.health_path, matcher="200", interval=10, healthy_threshold=2, unhealthy_threshold=3,
                port=str(args.health_port) if args.health_port is not None else "traffic-port"),
            opts=child)
        # What makes the target group usable: ECS refuses a service on a target group no
        # listener forwards to ("does not have an associated load balancer").
        self.listener = aws.lb.Listener(
            f"{name}-https", load_balancer_arn=self.load_balancer.arn, port=443, protocol="HTTPS",
            ssl_policy=SSL_POLICY, certificate_arn=certificate.arn,
            mutual_authentication=aws.lb.ListenerMutualAuthenticationArgs(
                mode="verify", trust_store_arn=trust_store.arn),
            default_actions=[aws.lb.ListenerDefaultActionArgs(type="forward",
                                                              target_group_arn=self.target_group.arn)],
            opts=child)
        self.request_label = pulumi.Output.concat(self.load_balancer.arn_suffix, "/", self.target_group.arn_suffix)
        self.register_outputs({})
