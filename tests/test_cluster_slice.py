"""Issue 19, first steps: the cluster placement's network and PostgreSQL on RDS, composed on their
own (tests/programs/cluster_slice) until the placement is wired into the program. Checked over
the registered graph, by the real AWS provider's validators, and (the parameter group) by the
real PostgreSQL 16."""

from __future__ import annotations

import ipaddress
import json
import re
from functools import cache
from pathlib import Path

import pytest

from components import cluster_network, managed_database
from configs import postgres as pg
from testsupport.servers import PgCluster
from testsupport.tools import require_tool
from tools import harness
from tools import terraform as tf

PROGRAM = Path(__file__).resolve().parent / "programs" / "cluster_slice"
STACKS = ("staging", "production")


@cache
def slice_plan(stack: str) -> harness.Plan:
    return harness.run(stack, program_dir=PROGRAM)


@pytest.fixture(params=STACKS)
def plan(request) -> harness.Plan:
    return slice_plan(request.param)


def _zones(plan: harness.Plan) -> int:
    return 3 if plan.stack == "production" else 2


# ------------------------------------------------------------------------------ network

def test_subnets_span_the_zones_and_never_overlap(plan):
    subnets = plan.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"]["tier"] == "public"]
    private = [s for s in subnets if s.inputs["tags"]["tier"] == "private"]
    assert len(public) == len(private) == _zones(plan)
    assert len({s.inputs["availabilityZone"] for s in private}) == _zones(plan)
    networks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    vpc = ipaddress.ip_network(plan.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"])
    assert all(n.subnet_of(vpc) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])
    assert all(not s.inputs["mapPublicIpOnLaunch"] for s in subnets)
    # A private /20 holds thousands of task addresses.
    assert all(ipaddress.ip_network(s.inputs["cidrBlock"]).prefixlen == 20 for s in private)


def test_subnet_plan_refuses_a_vpc_too_small():
    with pytest.raises(ValueError, match="too small"):
        cluster_network.subnet_cidrs("10.0.0.0/22", 3)


def test_private_subnets_leave_through_nat_and_only_public_ones_through_the_gateway(plan):
    tables = {t.urn: t for t in plan.of_type("aws:ec2/routeTable:RouteTable")}
    nats = plan.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == (3 if plan.stack == "production" else 1), "one NAT per zone in production"
    igw = plan.one("aws:ec2/internetGateway:InternetGateway")
    subnets = {s.urn: s for s in plan.of_type("aws:ec2/subnet:Subnet")}
    for assoc in plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation"):
        (subnet,) = [subnets[u] for u in assoc.property_dependencies["subnetId"]]
        (table,) = [tables[u] for u in assoc.property_dependencies["routeTableId"]]
        (route,) = table.inputs["routes"]
        via = set(table.property_dependencies["routes"])
        if subnet.inputs["tags"]["tier"] == "public":
            assert igw.urn in via
        else:
            assert via & {n.urn for n in nats} and igw.urn not in via
    for nat in nats:
        (subnet,) = [subnets[u] for u in nat.property_dependencies["subnetId"]]
        assert subnet.inputs["tags"]["tier"] == "public"


def test_aws_services_are_reached_through_endpoints(plan):
    endpoints = {e.inputs["serviceName"].rsplit(".", 1)[-1] if "ecr" not in e.inputs["serviceName"]
                 else e.inputs["serviceName"].split("us-east-1.")[1]: e for e in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert set(endpoints) == {"s3", *cluster_network.INTERFACE_ENDPOINTS}
    s3 = endpoints.pop("s3")
    assert s3.inputs["vpcEndpointType"] == "Gateway" and len(s3.inputs["routeTableIds"]) == _zones(plan)
    group = plan.one("aws:ec2/securityGroup:SecurityGroup", "cluster-endpoints-sg")
    for endpoint in endpoints.values():
        assert endpoint.inputs["vpcEndpointType"] == "Interface" and endpoint.inputs["privateDnsEnabled"] is True
        assert len(endpoint.inputs["subnetIds"]) == _zones(plan)
        assert group.urn in endpoint.property_dependencies["securityGroupIds"]
    (https,) = [r for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
                if group.urn in r.property_dependencies["securityGroupId"]]
    assert (https.inputs["fromPort"], https.inputs["toPort"], https.inputs["cidrIpv4"]) == (443, 443, "10.44.0.0/16")


def test_the_cluster_network_has_flow_logs_and_a_closed_default_group(plan):
    from tools import controls

    assert controls._flow_logged(plan) == [] and controls._default_sg_closed(plan) == []


# ------------------------------------------------------------------------------ PostgreSQL on RDS

def test_rds_is_private_encrypted_kept_and_recoverable(plan):
    db = plan.one("aws:rds/instance:Instance").inputs
    production = plan.stack == "production"
    assert db["engine"] == "postgres" and db["engineVersion"].startswith("16.")
    assert db["storageEncrypted"] is True and db["publiclyAccessible"] is False
    assert db["multiAz"] is production
    assert db["deletionProtection"] is True and db["skipFinalSnapshot"] is False and db["finalSnapshotIdentifier"]
    assert db["backupRetentionPeriod"] >= 7
    # RDS keeps the master password in Secrets Manager: no password in the program or its state.
    assert db["manageMasterUserPassword"] is True and "password" not in db
    assert db["username"] != "postgres" and db["iamDatabaseAuthenticationEnabled"] is True
    assert db["monitoringInterval"] == 60 and set(db["enabledCloudwatchLogsExports"]) == {"postgresql", "upgrade"}
    instance = plan.one("aws:rds/instance:Instance")
    assert instance.protect is production and instance.retain_on_delete is production


def test_rds_admits_the_tasks_only(plan):
    group = plan.one("aws:ec2/securityGroup:SecurityGroup", "postgres-sg")
    tasks = plan.one("aws:ec2/securityGroup:SecurityGroup", "tasks-sg")
    rules = [r for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
             if group.urn in r.property_dependencies["securityGroupId"]]
    assert [(r.inputs["fromPort"], r.inputs.get("cidrIpv4")) for r in rules] == [(5432, None)]
    assert tasks.urn in rules[0].property_dependencies["referencedSecurityGroupId"]


def test_the_parameter_group_is_the_host_tuning_for_the_instance_class(plan):
    params = plan.one("aws:rds/parameterGroup:ParameterGroup").inputs
    db = plan.one("aws:rds/instance:Instance").inputs
    memory = pg.RDS_INSTANCE_MEMORY_MB[db["instanceClass"]]
    assert params["family"] == "postgres16"
    assert {p["name"]: (p["value"], p["applyMethod"]) for p in params["parameters"]} == pg.rds_parameters(memory)
    assert pg.rds_parameters(memory)["rds.force_ssl"] == ("1", "immediate")


def test_rds_parameters_read_by_postgresql_16_equal_the_host_configuration(tmp_path):
    """The real server reads both files: every setting RDS takes comes out the same as the host's
    postgresql.conf gives it, so the units were converted right."""
    cluster = PgCluster()
    cluster.initdb("unused")
    postgres = str(cluster.bin / "postgres")
    for memory in (1024, 4096, 16384):
        rds = pg.rds_parameters(memory)
        lines = [f"{name} = '{value}'" for name, (value, _) in rds.items() if name != "rds.force_ssl"]
        host = cluster.file(f"host-{memory}.conf", pg.postgresql_conf(memory))
        ours = cluster.file(f"rds-{memory}.conf", "\n".join(lines) + "\n")
        for name in sorted(set(rds) - {"rds.force_ssl"}):
            shown = [cluster._run([postgres, "-D", str(cluster.data), "-c", f"config_file={conf}", "-C", name])
                     for conf in (host, ours)]
            assert all(r.returncode == 0 for r in shown), [r.stderr for r in shown]
            assert shown[0].stdout == shown[1].stdout, (memory, name, shown[0].stdout, shown[1].stdout)
    # Shown able to fail: a size given in the wrong unit reads differently.
    wrong = cluster.file("wrong.conf", f"shared_buffers = '{pg.tuning(4096).shared_buffers_mb}'\n")
    host = cluster.file("host.conf", pg.postgresql_conf(4096))
    shown = [cluster._run([postgres, "-D", str(cluster.data), "-c", f"config_file={c}", "-C", "shared_buffers"]).stdout
             for c in (host, wrong)]
    assert shown[0] != shown[1]
    cluster.destroy()


def test_an_unknown_instance_class_or_short_retention_is_refused():
    base = dict(name_prefix="p", instance_class="db.t4g.micro", allocated_storage_gb=20, multi_az=False,
                backup_retention_days=7, subnet_ids=[], vpc_id="v", client_security_group_ids=[], protect=False)
    with pytest.raises(ValueError, match="not one of"):
        managed_database.ManagedDatabase("x", managed_database.ManagedDatabaseArgs(**{**base, "instance_class": "db.x"}))
    with pytest.raises(ValueError, match="at least 7 days"):
        managed_database.ManagedDatabase("x", managed_database.ManagedDatabaseArgs(**{**base, "backup_retention_days": 3}))


# ------------------------------------------------------------------------------ Redis on ElastiCache

def test_redis_is_encrypted_authenticated_and_fails_over_in_production(plan):
    group = plan.one("aws:elasticache/replicationGroup:ReplicationGroup")
    inputs = group.inputs
    production = plan.stack == "production"
    assert inputs["engine"] == "redis" and inputs["engineVersion"].startswith("7.")
    assert inputs["atRestEncryptionEnabled"] is True and inputs["transitEncryptionEnabled"] is True
    assert isinstance(inputs["authToken"], harness.Secret)
    token = plan.one("random:index/randomPassword:RandomPassword", "redis-auth-token")
    assert token.urn in group.property_dependencies["authToken"] and token.inputs["special"] is False
    assert token.protect is production
    assert inputs["automaticFailoverEnabled"] is production and inputs["multiAzEnabled"] is production
    assert inputs["numCacheClusters"] == (2 if production else 1)
    assert inputs["snapshotRetentionLimit"] >= 1 and inputs["autoMinorVersionUpgrade"] is True
    assert group.protect is production
    params = plan.one("aws:elasticache/parameterGroup:ParameterGroup").inputs
    assert params["parameters"] == [{"name": "maxmemory-policy", "value": "allkeys-lru"}]
    group_sg = plan.one("aws:ec2/securityGroup:SecurityGroup", "redis-sg")
    tasks = plan.one("aws:ec2/securityGroup:SecurityGroup", "tasks-sg")
    (rule,) = [r for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if group_sg.urn in r.property_dependencies["securityGroupId"]]
    assert rule.inputs["fromPort"] == 6379 and tasks.urn in rule.property_dependencies["referencedSecurityGroupId"]


def test_the_host_and_elasticache_evict_alike():
    from configs import redis as redis_config

    assert f"maxmemory-policy {redis_config.MAXMEMORY_POLICY}" in redis_config.redis_conf(512)


# ------------------------------------------------------------------------------ services on Fargate

CREDENTIAL = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY$|DATABASE_URL|REDIS_URL)")


def _state(plan: harness.Plan, reg: harness.Registration, attribute: str) -> str:
    return plan.states[reg.urn][1][attribute]


def test_every_task_definition_is_what_the_ecs_api_takes_and_hardened(plan):
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("ecs").operation_model(
        "RegisterTaskDefinition").input_shape
    roles = {r.urn: r for r in plan.of_type("aws:iam/role:Role")}
    groups = {g.inputs["name"]: g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
    definitions = plan.of_type("aws:ecs/taskDefinition:TaskDefinition")
    assert definitions
    for definition in definitions:
        i = harness.unwrap(definition.inputs)
        execution, task = ([roles[u] for u in definition.property_dependencies[k]][0]
                           for k in ("executionRoleArn", "taskRoleArn"))
        request = {
            "family": i["family"], "networkMode": i["networkMode"], "requiresCompatibilities": i["requiresCompatibilities"],
            "cpu": i["cpu"], "memory": i["memory"], "executionRoleArn": _state(plan, execution, "arn"),
            "taskRoleArn": _state(plan, task, "arn"), "volumes": i["volumes"], "runtimePlatform": i["runtimePlatform"],
            "containerDefinitions": json.loads(i["containerDefinitions"])}
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), report.generate_report()
        assert execution.urn != task.urn, "one role pulls and logs, another is the application's"
        for container in request["containerDefinitions"]:
            assert container["user"].split(":")[0] not in ("0", "root")
            assert container["readonlyRootFilesystem"] is True and not container.get("privileged")
            assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
            assert container["healthCheck"]["command"] and 1 <= container["stopTimeout"] <= 120
            log = container["logConfiguration"]
            assert log["logDriver"] == "awslogs" and groups[log["options"]["awslogs-group"]].inputs["retentionInDays"] > 0
            assert not [e["name"] for e in container["environment"] if CREDENTIAL.search(e["name"])]
            assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in container["secrets"])


def test_every_service_deploys_rolling_privately_and_scales(plan):
    private = {s.urn for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"}
    targets = plan.of_type("aws:appautoscaling/target:Target")
    for service in plan.of_type("aws:ecs/service:Service"):
        i = service.inputs
        assert i["launchType"] == "FARGATE" and i["platformVersion"] == "LATEST"
        network = i["networkConfiguration"]
        assert network["assignPublicIp"] is False
        assert set(service.property_dependencies["networkConfiguration"]) & private
        assert (i["deploymentMinimumHealthyPercent"], i["deploymentMaximumPercent"]) == (100, 200)
        assert i["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert i["waitForSteadyState"] is True and "desiredCount" in service.ignore_changes
        (target,) = [t for t in targets if service.urn in t.all_dependencies]
        production = plan.stack == "production"
        assert target.inputs["minCapacity"] == i["desiredCount"] == (2 if production else 1)
        assert target.inputs["maxCapacity"] > target.inputs["minCapacity"]
        policies = [p for p in plan.of_type("aws:appautoscaling/policy:Policy") if target.urn in p.all_dependencies]
        metrics = {p.inputs["targetTrackingScalingPolicyConfiguration"]["predefinedMetricSpecification"]
                   ["predefinedMetricType"] for p in policies}
        assert "ECSServiceAverageCPUUtilization" in metrics


def test_an_execution_role_reads_only_its_own_service_s_secrets(plan):
    (policy,) = [p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-execution-secrets")]
    (statement,) = json.loads(policy.inputs["policy"])["Statement"]
    secret = plan.one("aws:secretsmanager/secret:Secret", "api-secrets")
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert statement["Resource"] == [_state(plan, secret, "arn")]


def test_the_cluster_has_container_insights(plan):
    cluster = plan.one("aws:ecs/cluster:Cluster")
    assert {"name": "containerInsights", "value": "enhanced"} in cluster.inputs["settings"]


# ------------------------------------------------------------------------------ the way in

def test_only_cloudflare_reaches_the_load_balancer_and_only_with_its_client_certificate(plan):
    group = plan.one("aws:ec2/securityGroup:SecurityGroup", "entry-sg")
    ingress = [r.inputs for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if group.urn in r.property_dependencies["securityGroupId"]]
    assert {(i["fromPort"], i.get("cidrIpv4") or i.get("cidrIpv6")) for i in ingress} == {
        (443, "173.245.48.0/20"), (443, "2400:cb00::/32")}
    (egress,) = [r.inputs for r in plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
                 if group.urn in r.property_dependencies["securityGroupId"]]
    assert (egress["fromPort"], egress["cidrIpv4"]) == (8443, "10.44.0.0/16")
    (listener,) = plan.of_type("aws:lb/listener:Listener")
    i = listener.inputs
    assert (i["port"], i["protocol"]) == (443, "HTTPS") and "TLS13" in i["sslPolicy"]
    assert i["mutualAuthentication"]["mode"] == "verify"
    store = plan.one("aws:lb/trustStore:TrustStore")
    assert store.urn in listener.property_dependencies["mutualAuthentication"]
    bundle = plan.one("aws:s3/bucketObjectv2:BucketObjectv2")
    ca = plan.one("tls:index/selfSignedCert:SelfSignedCert", "origin-pull-ca")
    assert ca.urn in bundle.property_dependencies["content"] and bundle.urn in store.all_dependencies
    certificate = plan.one("aws:acm/certificate:Certificate")
    assert isinstance(certificate.inputs["privateKey"], harness.Secret)
    assert certificate.urn in listener.property_dependencies["certificateArn"]


def test_the_load_balancer_drops_bad_requests_and_is_kept_in_production(plan):
    lb = plan.one("aws:lb/loadBalancer:LoadBalancer")
    production = plan.stack == "production"
    assert lb.inputs["dropInvalidHeaderFields"] is True and lb.inputs["desyncMitigationMode"] == "strictest"
    assert lb.inputs["enableDeletionProtection"] is production and lb.protect is production
    public = {s.urn for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "public"}
    assert set(lb.property_dependencies["subnets"]) == public


# ------------------------------------------------------------------------------ the real provider

@pytest.mark.parametrize("stack", STACKS)
def test_terraform_validate_accepts_the_slice(stack, tmp_path):
    require_tool("terraform")
    work = tmp_path / "schema"
    tfrc = tf.cli_config(tmp_path, tf.mirror())
    schema = tf.provider_schema(work, tfrc)
    translation = tf.translate(slice_plan(stack), schema)
    assert translation.dropped == []
    for kind, config in (("linked", translation.config), ("isolated", tf.translate(slice_plan(stack), schema,
                                                                                    isolated=True).config)):
        directory = tmp_path / kind
        directory.mkdir()
        (directory / "main.tf.json").write_text(json.dumps(config))
        assert tf.terraform(["init", "-input=false", "-no-color"], directory, tfrc).returncode == 0
        report = json.loads(tf.terraform(["validate", "-json", "-no-color"], directory, tfrc).stdout)
        assert [d for d in report["diagnostics"] if d["severity"] == "error"] == [], kind
