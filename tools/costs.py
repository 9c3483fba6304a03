"""What a stack costs per month at rest, counted from its plan: every priced resource the program
registers, at AWS's public on-demand prices for us-east-1.

    python -m tools.costs            # the monthly total of each stack and placement, as JSON
    python -m tools.costs --table    # the table docs/architecture.md carries (tests fail when stale)

Counted: compute (EC2 or Fargate at each service's minimum tasks), the data services, NAT
gateways, interface endpoints, the load balancer (one LCU), public IPv4 addresses, EBS, secrets
and alarms. Not counted, as they follow traffic and data, not the placement: data transfer,
NAT and endpoint processing per GB, S3, CloudWatch Logs ingestion, backup storage beyond the
free allowance, AWS Backup's snapshot storage (per GB), ECR storage of cached images (per GB). Prices change: PRICED_ON says when these were read, SOURCES where.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from offline.harness import Plan

PRICED_ON = "2026-11-30"
REGION = "us-east-1"
SOURCES = (
    "https://aws.amazon.com/fargate/pricing/", "https://aws.amazon.com/rds/postgresql/pricing/",
    "https://aws.amazon.com/elasticache/pricing/", "https://aws.amazon.com/vpc/pricing/",
    "https://aws.amazon.com/elasticloadbalancing/pricing/", "https://aws.amazon.com/ec2/pricing/on-demand/",
    "https://aws.amazon.com/ebs/pricing/", "https://aws.amazon.com/secrets-manager/pricing/",
    "https://aws.amazon.com/cloudwatch/pricing/", "https://aws.amazon.com/kms/pricing/",
)
HOURS = 730  # AWS's month
FARGATE_VCPU_HOUR = 0.04048
FARGATE_GB_HOUR = 0.004445
EC2_HOUR = {"t3.medium": 0.0416, "t3.large": 0.0832, "t3.xlarge": 0.1664}
EBS_GP3_GB_MONTH = 0.08
RDS_HOUR = {"db.t4g.micro": 0.016, "db.t4g.small": 0.032, "db.t4g.medium": 0.065, "db.t4g.large": 0.129,
            "db.m7g.large": 0.168, "db.m7g.xlarge": 0.336, "db.r7g.large": 0.239, "db.r7g.xlarge": 0.478}
RDS_GP3_GB_MONTH = 0.115
CACHE_NODE_HOUR = {"cache.t4g.micro": 0.016, "cache.t4g.small": 0.032, "cache.t4g.medium": 0.065}
NAT_HOUR = 0.045
INTERFACE_ENDPOINT_AZ_HOUR = 0.01
ALB_HOUR = 0.0225
ALB_LCU_HOUR = 0.008
PUBLIC_IPV4_HOUR = 0.005
SECRET_MONTH = 0.40
ALARM_MONTH = 0.10
KMS_KEY_MONTH = 1.00


@dataclass(frozen=True)
class Line:
    item: str
    quantity: str
    monthly: float


def _zones(plan: Plan) -> int:
    return len({s.inputs.get("availabilityZone") for s in plan.of_type("aws:ec2/subnet:Subnet")
                if (s.inputs.get("tags") or {}).get("tier") == "public"}) or 1


def estimate(plan: Plan) -> list[Line]:
    lines: list[Line] = []
    for instance in plan.of_type("aws:ec2/instance:Instance"):
        kind = instance.inputs["instanceType"]
        root = (instance.inputs.get("rootBlockDevice") or {}).get("volumeSize", 0)
        lines.append(Line(f"EC2 {kind}", "1", EC2_HOUR[kind] * HOURS))
        lines.append(Line("EBS gp3 (root)", f"{root} GB", root * EBS_GP3_GB_MONTH))
    volumes = sum(v.inputs["size"] for v in plan.of_type("aws:ebs/volume:Volume"))
    if volumes:
        lines.append(Line("EBS gp3 (data)", f"{volumes} GB", volumes * EBS_GP3_GB_MONTH))
    targets = {t.name.removesuffix("-scaling"): t.inputs["minCapacity"]
               for t in plan.of_type("aws:appautoscaling/target:Target")}
    vcpu_hours = gb_hours = 0.0
    tasks = 0
    for definition in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        if definition.inputs["tags"].get("runs") != "service":
            continue  # one-off tasks run minutes a month
        count = targets[definition.name.removesuffix("-task-definition")]
        tasks += count
        vcpu_hours += int(definition.inputs["cpu"]) / 1024 * count * HOURS
        gb_hours += int(definition.inputs["memory"]) / 1024 * count * HOURS
    if tasks:
        lines.append(Line("Fargate vCPU", f"{vcpu_hours / HOURS:g} vCPU", vcpu_hours * FARGATE_VCPU_HOUR))
        lines.append(Line("Fargate memory", f"{gb_hours / HOURS:g} GB", gb_hours * FARGATE_GB_HOUR))
    for db in plan.of_type("aws:rds/instance:Instance"):
        copies = 2 if db.inputs.get("multiAz") else 1
        kind = db.inputs["instanceClass"]
        storage = db.inputs["allocatedStorage"]
        az = "Multi-AZ" if copies == 2 else "Single-AZ"
        lines.append(Line(f"RDS PostgreSQL {kind} {az}", f"{copies}", RDS_HOUR[kind] * copies * HOURS))
        lines.append(Line("RDS gp3 storage", f"{storage} GB x {copies}", storage * copies * RDS_GP3_GB_MONTH))
    for group in plan.of_type("aws:elasticache/replicationGroup:ReplicationGroup"):
        nodes = group.inputs["numCacheClusters"]
        kind = group.inputs["nodeType"]
        lines.append(Line(f"ElastiCache {kind}", f"{nodes} nodes", CACHE_NODE_HOUR[kind] * nodes * HOURS))
    nats = len(plan.of_type("aws:ec2/natGateway:NatGateway"))
    if nats:
        lines.append(Line("NAT gateway", f"{nats}", nats * NAT_HOUR * HOURS))
    interface = [e for e in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["vpcEndpointType"] == "Interface"]
    if interface:
        az_count = sum(len(e.inputs["subnetIds"]) for e in interface)
        lines.append(Line("Interface endpoints", f"{len(interface)} x {az_count // len(interface)} zones",
                          az_count * INTERFACE_ENDPOINT_AZ_HOUR * HOURS))
    balancers = plan.of_type("aws:lb/loadBalancer:LoadBalancer")
    if balancers:
        lines.append(Line("Application Load Balancer (1 LCU)", f"{len(balancers)}",
                          len(balancers) * (ALB_HOUR + ALB_LCU_HOUR) * HOURS))
    # Public IPv4: the host's Elastic IP; the NATs' and the load balancer's (one per zone).
    addresses = len(plan.of_type("aws:ec2/eip:Eip")) + len(balancers) * _zones(plan)
    if addresses:
        lines.append(Line("Public IPv4 addresses", f"{addresses}", addresses * PUBLIC_IPV4_HOUR * HOURS))
    secrets = len(plan.of_type("aws:secretsmanager/secret:Secret")) + len(plan.of_type("aws:rds/instance:Instance"))
    if secrets:
        lines.append(Line("Secrets Manager secrets", f"{secrets}", secrets * SECRET_MONTH))
    keys = len(plan.of_type("aws:kms/key:Key"))
    if keys:
        lines.append(Line("KMS keys", f"{keys}", keys * KMS_KEY_MONTH))
    alarms = len(plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    if alarms:
        lines.append(Line("CloudWatch alarms", f"{alarms}", alarms * ALARM_MONTH))
    return lines


def total(lines: list[Line]) -> float:
    return sum(line.monthly for line in lines)


def plans() -> dict[str, Plan]:
    from offline import harness

    return {f"{stack}, {placement}": harness.run(stack, overrides={"placement": placement})
            for placement in ("host", "cluster") for stack in ("staging", "production")}


def summary(by_stack: dict[str, Plan]) -> str:
    """Totals per stack and placement (the README's)."""
    rows = [f"Monthly, at rest, {REGION} on-demand prices read {PRICED_ON} (tools/costs.py; traffic-driven "
            "charges excluded):", "", "| stack, placement | resources | USD per month |", "|---|---|---|"]
    rows += [f"| {name} | {len(plan.resources)} | {total(estimate(plan)):,.0f} |" for name, plan in by_stack.items()]
    return "\n".join(rows)


def table(by_stack: dict[str, Plan]) -> str:
    """The totals, then each priced line (docs/architecture.md's)."""
    rows = [summary(by_stack)]
    for name, plan in by_stack.items():
        lines = estimate(plan)
        rows += ["", f"{name}:", "", "| item | quantity | USD per month |", "|---|---|---|"]
        rows += [f"| {line.item} | {line.quantity} | {line.monthly:,.2f} |" for line in lines]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="the line-by-line Markdown table instead")
    args = parser.parse_args(argv)
    print("planning staging and production on both placements (about 10 s) ...", file=sys.stderr)
    by_stack = plans()
    if args.table:
        print(table(by_stack))
    else:
        print(json.dumps({name: round(total(estimate(plan)), 2) for name, plan in by_stack.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


