"""Issue 19: the program with `placement: cluster` on staging and production, checked over the
whole registered graph (table-driven), by the ECS API model in botocore, by the real AWS
provider's validators, and (the parameter group) by the real PostgreSQL 16."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
import yaml

import settings
from components import cluster_network, managed_database
from configs import postgres as pg
from offline import harness
from policy.cloudflare_ranges import CF_IPV4, CF_IPV6
from testsupport.aws_models import api_errors
from testsupport.plans import CLOUD_STACKS, cluster_plan_for, plan_for
from testsupport.servers import PgCluster
from testsupport.tools import ROOT, require_tool
from tools import terraform as tf

STACKS = ("staging", "production")
DOMAINS = {"staging": "staging.storiesofsoftware.com", "production": "storiesofsoftware.com"}


@pytest.fixture(params=STACKS)
def plan(request) -> harness.Plan:
    return cluster_plan_for(request.param)


# The task bounds settings give each service by default (settings `cluster.tasks`), written
# from the issue: at least two tasks of everything that serves requests in production; one n8n
# main and one webhook process.
BOUNDS = {
    "staging": {"edge-service": (1, 2), "api-service": (1, 2), "frontend-service": (1, 2),
                "n8n-service": (1, 1), "n8n-webhook-service": (1, 1), "n8n-worker-service": (1, 2)},
    "production": {"edge-service": (2, 6), "api-service": (2, 10), "frontend-service": (2, 8),
                   "n8n-service": (1, 1), "n8n-webhook-service": (1, 1), "n8n-worker-service": (1, 4)},
}


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


def test_the_zones_are_those_where_rds_offers_the_class_not_the_first_by_name(plan):
    """A zone name is the account's alias of a zone ID, and us-east-1's use1-az3 has no Graviton
    RDS class (the canned answer says so, offline/canned.py): production's three zones skip it
    although it is among the first three names; every subnet is in a zone RDS offers the class."""
    db_class = plan.one("aws:rds/instance:Instance").inputs["instanceClass"]
    offered = {"us-east-1a", "us-east-1b", "us-east-1d", "us-east-1e", "us-east-1f"}
    assert re.match(r"db\.[a-z]+\dg\.", db_class), db_class
    zones = {s.inputs["availabilityZone"] for s in plan.of_type("aws:ec2/subnet:Subnet")}
    assert zones <= offered and len(zones) == _zones(plan)
    # Asked for the major RDS runs and as it runs it (the first of several options, not an error).
    (asked,) = [a for t, a in plan.invokes if t == "aws:rds/getOrderableDbInstance:getOrderableDbInstance"]
    assert asked["engine"] == "postgres" and asked["engineVersion"].startswith(managed_database.ENGINE_VERSION + ".")
    assert asked["preferredInstanceClasses"] == [db_class] and "instanceClass" not in asked
    assert asked["storageType"] == "gp3" and asked.get("supportsMultiAz") is (True if plan.stack == "production" else None)
    # A later answer must not move a subnet (a replacement of it and everything in it).
    assert all("availabilityZone" in s.ignore_changes for s in plan.of_type("aws:ec2/subnet:Subnet"))
    # By name alone, production would have taken a, b and c.
    assert zones == ({"us-east-1a", "us-east-1b", "us-east-1d"} if plan.stack == "production"
                     else {"us-east-1a", "us-east-1b"})


@pytest.mark.parametrize("available,offered,wanted,chosen", [
    (["a", "b", "c", "d"], ["a", "b", "d"], 3, ["a", "b", "d"]),
    (["a", "b", "c"], None, 2, ["a", "b"]),
    (["b", "a", "c"], ["c", "a"], 2, ["a", "c"]),  # in the available order, not the offered one
])
def test_zones_are_chosen_in_order_among_those_offered(available, offered, wanted, chosen):
    assert cluster_network.choose_zones(available, offered, wanted, "us-east-1") == chosen


def test_too_few_offering_zones_is_a_clear_error():
    with pytest.raises(ValueError, match="3 availability zones are needed and only 2 offer the database class"):
        cluster_network.choose_zones(["a", "b", "c"], ["a", "c"], 3, "us-east-1")


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
    from tools import control_checks

    assert control_checks.flow_logged(plan) == [] and control_checks.default_sg_closed(plan) == []


# ------------------------------------------------------------------------------ PostgreSQL on RDS

def test_rds_is_private_encrypted_kept_and_recoverable(plan):
    db = plan.one("aws:rds/instance:Instance").inputs
    production = plan.stack == "production"
    assert db["engine"] == "postgres" and db["engineVersion"] == "16"
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
    tasks = plan.one("aws:ec2/securityGroup:SecurityGroup", "tasks-apps")
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
                backup_retention_days=7, subnet_ids=[], vpc_id="v", client_security_group_ids=[], protect=False,
                log_retention_days=30)
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
    # Rotated by replacing it (secretGenerations.redis), so never protected; no strategy, so
    # AWS's default (ROTATE) keeps the old token valid beside the new one.
    assert token.protect is False and "authTokenUpdateStrategy" not in inputs
    assert inputs["automaticFailoverEnabled"] is production and inputs["multiAzEnabled"] is production
    assert inputs["numCacheClusters"] == (2 if production else 1)
    assert inputs["snapshotRetentionLimit"] >= 1 and inputs["autoMinorVersionUpgrade"] is True
    assert group.protect is production
    params = plan.one("aws:elasticache/parameterGroup:ParameterGroup").inputs
    # n8n's queue is in it (tests below): nothing is evicted.
    assert params["parameters"] == [{"name": "maxmemory-policy", "value": "noeviction"}]
    group_sg = plan.one("aws:ec2/securityGroup:SecurityGroup", "redis-sg")
    tasks = plan.one("aws:ec2/securityGroup:SecurityGroup", "tasks-apps")
    (rule,) = [r for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if group_sg.urn in r.property_dependencies["securityGroupId"]]
    assert rule.inputs["fromPort"] == 6379 and tasks.urn in rule.property_dependencies["referencedSecurityGroupId"]


def test_the_hosts_redis_is_a_cache_and_holds_no_queue():
    """allkeys-lru is right only where no queue lives: n8n on the host runs without one."""
    from configs import redis as redis_config
    from testsupport.plans import container_env

    assert f"maxmemory-policy {redis_config.MAXMEMORY_POLICY}" in redis_config.redis_conf(512)
    n8n = plan_for("production").one("docker:index/container:Container", "n8n-svc")
    assert "EXECUTIONS_MODE" not in container_env(n8n) and "QUEUE_BULL_REDIS_HOST" not in container_env(n8n)


# ------------------------------------------------------------------------------ services on Fargate

CREDENTIAL = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY$|DATABASE_URL|REDIS_URL)")


def _state(plan: harness.Plan, reg: harness.Registration, attribute: str) -> str:
    return plan.states[reg.urn][1][attribute]


def test_every_task_definition_is_what_the_ecs_api_takes_and_hardened(plan):
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
            "taskRoleArn": _state(plan, task, "arn"), "runtimePlatform": i["runtimePlatform"],
            "containerDefinitions": json.loads(i["containerDefinitions"])}
        assert api_errors("ecs", "RegisterTaskDefinition", request) == ""
        assert execution.urn != task.urn, "one role pulls and logs, another is the application's"
        for container in request["containerDefinitions"]:
            assert container["user"].split(":")[0] not in ("0", "root")
            assert container["readonlyRootFilesystem"] is True and not container.get("privileged")
            assert container["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
            one_off = i["tags"]["runs"] == "one-off"
            assert one_off or container["healthCheck"]["command"]
            assert 1 <= container["stopTimeout"] <= 120
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
        # n8n's main process alone stops before its successor starts (two would fire every
        # schedule twice); everything else rolls with full capacity.
        expected = (0, 100) if service.name == "n8n-service" else (100, 200)
        assert (i["deploymentMinimumHealthyPercent"], i["deploymentMaximumPercent"]) == expected, service.name
        assert i["tags"]["deploy"] == ("stop-first" if service.name == "n8n-service" else "rolling")
        assert i["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert i["waitForSteadyState"] is True and "desiredCount" in service.ignore_changes
        (target,) = [t for t in targets if service.urn in t.all_dependencies]
        assert (target.inputs["minCapacity"], target.inputs["maxCapacity"]) == BOUNDS[plan.stack][service.name]
        assert i["desiredCount"] == target.inputs["minCapacity"]
        policies = [p for p in plan.of_type("aws:appautoscaling/policy:Policy") if target.urn in p.all_dependencies]
        metrics = {p.inputs["targetTrackingScalingPolicyConfiguration"].get("predefinedMetricSpecification", {})
                   .get("predefinedMetricType") for p in policies}
        assert "ECSServiceAverageCPUUtilization" in metrics


def test_an_execution_role_reads_exactly_the_secrets_its_containers_name(plan):
    policies = {p.name.removesuffix("-execution-secrets"): p for p in plan.of_type("aws:iam/rolePolicy:RolePolicy")
                if p.name.endswith("-execution-secrets")}
    for definition in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        task = definition.name.removesuffix("-task-definition")
        # A secret's own ARN is the first seven fields of `<arn>:<json key>::`.
        named = {":".join(s["valueFrom"].split(":")[:7])
                 for c in json.loads(definition.inputs["containerDefinitions"]) for s in c["secrets"]}
        if not named:
            assert task not in policies, f"{task} reads no secret, so its role may read none"
            continue
        (statement,) = json.loads(policies[task].inputs["policy"])["Statement"]
        assert statement["Action"] == "secretsmanager:GetSecretValue"
        assert set(statement["Resource"]) == named, task


def test_the_cluster_has_container_insights(plan):
    cluster = plan.one("aws:ecs/cluster:Cluster")
    assert {"name": "containerInsights", "value": "enhanced"} in cluster.inputs["settings"]


# ------------------------------------------------------------------------------ the way in

def test_only_cloudflare_reaches_the_load_balancer_and_only_with_its_client_certificate(plan):
    group = plan.one("aws:ec2/securityGroup:SecurityGroup", "entry-sg")
    ingress = [r.inputs for r in plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
               if group.urn in r.property_dependencies["securityGroupId"]]
    assert {(i["fromPort"], i.get("cidrIpv4") or i.get("cidrIpv6")) for i in ingress} == {
        (443, cidr) for cidr in (*CF_IPV4, *CF_IPV6)}
    egress = [r.inputs for r in plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
              if group.urn in r.property_dependencies["securityGroupId"]]
    # The edge's HTTP port and its health port, inside the VPC.
    assert {(e["fromPort"], e["cidrIpv4"]) for e in egress} == {(8080, "10.44.0.0/16"), (8081, "10.44.0.0/16")}
    (listener,) = plan.of_type("aws:lb/listener:Listener")
    i = listener.inputs
    assert (i["port"], i["protocol"]) == (443, "HTTPS") and "TLS13" in i["sslPolicy"]
    assert i["mutualAuthentication"]["mode"] == "verify"
    store = plan.one("aws:lb/trustStore:TrustStore")
    assert store.urn in listener.property_dependencies["mutualAuthentication"]
    bundle = plan.one("aws:s3/bucketObjectv2:BucketObjectv2")
    ca = plan.one("tls:index/selfSignedCert:SelfSignedCert", "cdn-pull-ca")
    assert ca.urn in bundle.property_dependencies["content"] and bundle.urn in store.all_dependencies
    certificate = plan.one("aws:acm/certificate:Certificate")
    assert isinstance(certificate.inputs["privateKey"], harness.Secret)
    assert certificate.urn in listener.property_dependencies["certificateArn"]


def test_the_load_balancer_drops_bad_requests_and_is_kept_in_production(plan):
    lb = plan.one("aws:lb/loadBalancer:LoadBalancer")
    production = plan.stack == "production"
    assert lb.inputs["dropInvalidHeaderFields"] is True and lb.inputs["desyncMitigationMode"] == "defensive"
    assert lb.inputs["enableDeletionProtection"] is production and lb.protect is production
    public = {s.urn for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "public"}
    assert set(lb.property_dependencies["subnets"]) == public


# ------------------------------------------------------------------------------ the real provider

@pytest.mark.parametrize("stack", STACKS)
def test_terraform_validate_accepts_the_cluster_placement(stack, tmp_path):
    require_tool("terraform")
    work = tmp_path / "schema"
    tfrc = tf.cli_config(tmp_path, tf.mirror())
    schema = tf.provider_schema(work, tfrc)
    translation = tf.translate(cluster_plan_for(stack), schema)
    assert translation.dropped == []
    for kind, config in (("linked", translation.config), ("isolated", tf.translate(cluster_plan_for(stack), schema,
                                                                                    isolated=True).config)):
        directory = tmp_path / kind
        directory.mkdir()
        (directory / "main.tf.json").write_text(json.dumps(config))
        assert tf.terraform(["init", "-input=false", "-no-color"], directory, tfrc).returncode == 0
        report = json.loads(tf.terraform(["validate", "-json", "-no-color"], directory, tfrc).stdout)
        assert [d for d in report["diagnostics"] if d["severity"] == "error"] == [], kind


# ------------------------------------------------------------------------------ the platform on it

def _definition(plan: harness.Plan, task: str) -> dict:
    (container,) = json.loads(plan.one("aws:ecs/taskDefinition:TaskDefinition", f"{task}-task-definition")
                              .inputs["containerDefinitions"])
    return container


def test_one_off_tasks_run_in_order_before_what_needs_them(plan):
    run = {name: plan.one("command:local:Command", f"{name}-run")
           for name in ("database-bootstrap", "api-migrate", "api-indexes")}
    service = {s.name.removesuffix("-service"): s for s in plan.of_type("aws:ecs/service:Service")}
    db = plan.one("aws:rds/instance:Instance")
    assert plan.depends_transitively(run["database-bootstrap"].urn, db.urn)
    assert plan.depends_transitively(run["api-migrate"].urn, run["database-bootstrap"].urn)
    assert plan.depends_transitively(run["api-indexes"].urn, run["api-migrate"].urn)
    assert plan.depends_transitively(service["api"].urn, run["api-indexes"].urn)
    for process in ("n8n", "n8n-webhook", "n8n-worker"):
        assert plan.depends_transitively(service[process].urn, run["database-bootstrap"].urn), process
    # The edge does not wait for the database: it answers (and serves its cache) regardless.
    assert not plan.depends_transitively(service["edge"].urn, run["database-bootstrap"].urn)
    private = [plan.states[s.urn][0] for s in plan.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"]
    cluster_arn = plan.states[plan.one("aws:ecs/cluster:Cluster").urn][1]["arn"]
    for name, command in run.items():
        definition = plan.one("aws:ecs/taskDefinition:TaskDefinition", f"{name}-task-definition")
        arn = plan.states[definition.urn][1]["arn"]
        argv = command.inputs["create"].split()
        assert argv[:3] == ["venv/bin/python", "-m", "deploy.run_task"]
        options = dict(zip(argv[3::2], argv[4::2], strict=True))
        assert options["--task-definition"] == arn and options["--container"] == name
        assert options["--cluster"] == cluster_arn and options["--subnets"].split(",") == private
        # Each new revision (image, command, settings) runs once; an unchanged one never again.
        assert command.inputs["triggers"] == [arn]


def test_no_static_key_exists_and_only_the_api_reaches_s3(plan):
    assert plan.of_type("aws:iam/accessKey:AccessKey") == [] and plan.of_type("aws:iam/user:User") == []
    task_policies = {p.name.removesuffix("-task-policy"): json.loads(p.inputs["policy"])
                     for p in plan.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-task-policy")}
    assert set(task_policies) == {"api"}, "one task role with rights: the API's"
    (statement,) = task_policies["api"]["Statement"]
    buckets = {k: plan.states[plan.one("aws:s3/bucket:Bucket", f"storage-{k}").urn][1]["arn"]
               for k in ("content", "images", "backups")}
    assert set(statement["Action"]) == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert set(statement["Resource"]) == {f"{buckets['content']}/*", f"{buckets['images']}/*"}


def test_no_secret_reaches_a_task_definition_or_a_plain_input(plan):
    secrets = {v for v in plan.secret_values if len(v) >= 8}
    assert secrets, "the plan has generated secrets to look for"
    for definition in plan.of_type("aws:ecs/taskDefinition:TaskDefinition"):
        text = definition.inputs["containerDefinitions"]
        assert not [s for s in secrets if s in text], definition.name
    for version in plan.of_type("aws:secretsmanager/secretVersion:SecretVersion"):
        assert isinstance(version.inputs["secretString"], harness.Secret)
    # The bootstrap task carries SCRAM verifiers, never the passwords themselves.
    roles = json.loads(plan.one("aws:secretsmanager/secretVersion:SecretVersion",
                                "database-roles-secrets-value").inputs["secretString"].value)
    assert set(roles) == {"SOS_APP_VERIFIER", "SOS_N8N_VERIFIER", "SOS_MONITORING_VERIFIER"}
    assert all(v.startswith("SCRAM-SHA-256$4096:") for v in roles.values())
    assert not set(roles.values()) & plan.secret_values - set(roles.values())


def test_the_edge_runs_the_host_edge_behind_the_load_balancer(plan):
    from configs import edge_release
    from configs import nginx as ng

    container = _definition(plan, "edge")
    env = {e["name"]: e["value"] for e in container["environment"]}
    files = edge_release.cluster_unbundle(env[edge_release.CLUSTER_RELEASE_VARIABLE])
    conf = files["nginx.conf"].content
    assert "ssl_certificate" not in conf and "ssl_verify_client" not in conf, "TLS ends at the load balancer"
    prefix = f"sos-{plan.stack}"
    for upstream, port in (("api", 3001), ("frontend", 3000), ("n8n", 5678), ("n8n-webhook", 5678)):
        assert f"server {upstream}.{prefix}.internal:{port} resolve" in conf
    assert "resolver 169.254.169.253 valid=10s" in conf and "set_real_ip_from 10.44.0.0/16;" in conf
    assert files["release.conf"].content.startswith("geo $sos_release")
    assert container["command"][:2] == ["sh", "-c"] and container["portMappings"][0]["containerPort"] == ng.HTTP_PORT
    namespace = plan.one("aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace")
    assert namespace.inputs["name"] == f"{prefix}.internal"
    registered = {s.inputs["name"] for s in plan.of_type("aws:servicediscovery/service:Service")}
    assert registered == {"api", "frontend", "n8n", "n8n-webhook"}
    group = plan.one("aws:lb/targetGroup:TargetGroup")
    assert group.inputs["port"] == ng.HTTP_PORT and group.inputs["healthCheck"]["port"] == str(ng.HEALTH_PORT)


def test_n8n_runs_in_queue_mode_on_the_managed_services(plan):
    for process, command in (("n8n", None), ("n8n-webhook", ["webhook"]), ("n8n-worker", ["worker"])):
        container = _definition(plan, process)
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert container.get("command") == command
        assert env["EXECUTIONS_MODE"] == "queue" and env["QUEUE_BULL_REDIS_TLS"] == "true"
        assert env["QUEUE_BULL_REDIS_HOST"].endswith(".cache.amazonaws.com")
        assert env["DB_POSTGRESDB_HOST"].endswith(".rds.amazonaws.com") and env["DB_POSTGRESDB_SSL_ENABLED"] == "true"
        assert {s["name"] for s in container["secrets"]} == {
            "DB_POSTGRESDB_PASSWORD", "N8N_ENCRYPTION_KEY", "QUEUE_BULL_REDIS_PASSWORD"}


def test_cloudflare_points_at_the_load_balancer_which_logs_every_request(plan):
    lb = plan.one("aws:lb/loadBalancer:LoadBalancer")
    dns = plan.states[lb.urn][1]["dnsName"]
    records = plan.of_type("cloudflare:index/dnsRecord:DnsRecord")
    assert {r.inputs["name"] for r in records} == {f"{k}{DOMAINS[plan.stack]}" for k in ("", "www.", "api.", "n8n.")}
    assert all((r.inputs["type"], r.inputs["content"], r.inputs["proxied"]) == ("CNAME", dns, True) for r in records)
    logs = plan.one("aws:s3/bucket:Bucket", "storage-logs")
    assert lb.inputs["accessLogs"] == {"bucket": plan.states[logs.urn][1]["bucket"], "prefix": "alb", "enabled": True}
    policy = plan.one("aws:s3/bucketPolicy:BucketPolicy", "storage-logs-tls-only")
    assert policy.urn in lb.depends_on, "the load balancer checks its log bucket's policy when it is created"
    (grant,) = [s for s in json.loads(policy.inputs["policy"])["Statement"] if s["Sid"] == "LoadBalancerAccessLogs"]
    assert grant["Principal"] == {"AWS": "arn:aws:iam::127311923021:root"}
    assert grant["Resource"].endswith("/alb/AWSLogs/123456789012/*") and grant["Action"] == "s3:PutObject"


def test_every_host_alert_is_an_alarm_or_says_why_not(plan):
    from configs import cloudwatch
    from configs import monitoring as mon

    host_alerts = {rule["alert"] for group in yaml.safe_load(mon.alert_rules())["groups"] for rule in group["rules"]}
    alarms = plan.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    mapped = {re.search(r"the host placement's (\w+)", a.inputs["alarmDescription"]).group(1) for a in alarms}
    assert mapped | set(cloudwatch.NOT_MAPPED) == host_alerts
    assert mapped <= host_alerts and not mapped & set(cloudwatch.NOT_MAPPED)
    topic = plan.one("aws:sns/topic:Topic")
    topic_arn = plan.states[topic.urn][1]["arn"]
    for alarm in alarms:
        i = alarm.inputs
        assert i["alarmActions"] == [topic_arn] and i["okActions"] == [topic_arn]
        request = {"AlarmName": i["name"], "Namespace": i["namespace"], "MetricName": i["metricName"],
                   "Dimensions": [{"Name": k, "Value": v} for k, v in i["dimensions"].items()],
                   "ComparisonOperator": i["comparisonOperator"], "Threshold": i["threshold"],
                   "EvaluationPeriods": i["evaluationPeriods"], "Period": i["period"],
                   "TreatMissingData": i["treatMissingData"], "AlarmActions": i["alarmActions"],
                   **({"ExtendedStatistic": i["extendedStatistic"]} if "extendedStatistic" in i
                      else {"Statistic": i["statistic"]})}
        assert api_errors("cloudwatch", "PutMetricAlarm", request) == ""
        assert all(v for v in i["dimensions"].values()), alarm.name
    # Each service that serves is watched for missing tasks.
    watched = {a.name.removeprefix("alarms-").removesuffix("-tasks-missing") for a in alarms
               if a.name.endswith("-tasks-missing")}
    assert watched == {"edge", "api", "frontend", "n8n", "n8n-webhook", "n8n-worker"}
    events = plan.one("aws:rds/eventSubscription:EventSubscription").inputs
    assert "backup" in events["eventCategories"] and "failover" in events["eventCategories"]


def test_the_alarm_request_is_shown_able_to_fail_validation():
    from configs import cloudwatch

    (alarm, *_) = cloudwatch.alarms(load_balancer="app/x/1", target_group="targetgroup/y/2", cluster="c",
                                    services={"api": ("api-1", 2)}, database="db", database_memory_mb=1024,
                                    storage_gb=20, cache_nodes=["r-001"], certificate_arn="arn:aws:acm:x")
    good = alarm.request("sos-staging", "arn:aws:sns:us-east-1:1:t")
    assert api_errors("cloudwatch", "PutMetricAlarm", good) == ""
    assert api_errors("cloudwatch", "PutMetricAlarm", {**good, "ComparisonOperator": 5, "Statistic": None}) != ""


def test_a_switch_from_the_host_keeps_the_buckets_and_every_secret():
    """The same names, so the same resources: switching placement neither deletes a bucket nor
    regenerates a secret (backupCipher still opens the host's pgBackRest repository)."""
    for stack in STACKS:
        host, cluster = plan_for(stack), cluster_plan_for(stack)
        kept = ("random:index/randomPassword:RandomPassword", "aws:s3/bucket:Bucket", "pulumi:providers:aws",
                "cloudflare:index/originCaCertificate:OriginCaCertificate")
        for kind in kept:
            before = {r.urn for r in host.of_type(kind) if not r.name.startswith("redis-auth")}
            after = {r.urn for r in cluster.of_type(kind)}
            assert before and before <= after, (stack, kind, before - after)


def test_serving_services_scale_on_cpu_and_on_requests(plan):
    """The edge on requests per target (it is the load balancer's target); the API and the
    frontend on the load balancer's requests per task of theirs (metric math), each request
    policy what the Application Auto Scaling API takes."""
    policies = {p.name: p.inputs for p in plan.of_type("aws:appautoscaling/policy:Policy")}
    for service in ("edge", "api", "frontend"):
        assert f"{service}-scale-on-cpu" in policies and f"{service}-scale-on-requests" in policies, service
    assert policies["edge-scale-on-requests"]["targetTrackingScalingPolicyConfiguration"][
        "predefinedMetricSpecification"]["predefinedMetricType"] == "ALBRequestCountPerTarget"
    group = plan.states[plan.one("aws:lb/targetGroup:TargetGroup").urn][1]["arnSuffix"]
    for service in ("api", "frontend"):
        config = policies[f"{service}-scale-on-requests"]["targetTrackingScalingPolicyConfiguration"]
        metrics = {m["id"]: m for m in config["customizedMetricSpecification"]["metrics"]}
        assert metrics["per_task"]["expression"] == "requests / tasks" and metrics["per_task"]["returnData"] is True
        dims = {d["name"]: d["value"] for d in metrics["requests"]["metricStat"]["metric"]["dimensions"]}
        assert dims["TargetGroup"] == group
        tasks = {d["name"]: d["value"] for d in metrics["tasks"]["metricStat"]["metric"]["dimensions"]}
        service_name = plan.states[plan.one("aws:ecs/service:Service", f"{service}-service").urn][1]["name"]
        assert tasks["ServiceName"] == service_name
        request = {"PolicyName": f"{service}-requests", "ServiceNamespace": "ecs",
                   "ResourceId": f"service/c/{service_name}", "ScalableDimension": "ecs:service:DesiredCount",
                   "PolicyType": "TargetTrackingScaling", "TargetTrackingScalingPolicyConfiguration": {
                       "TargetValue": float(config["targetValue"]),
                       "CustomizedMetricSpecification": {"Metrics": [
                           {"Id": m["id"], "ReturnData": m["returnData"],
                            **({"Expression": m["expression"], "Label": m["label"]} if "expression" in m else
                               {"MetricStat": {"Stat": m["metricStat"]["stat"], "Metric": {
                                   "Namespace": m["metricStat"]["metric"]["namespace"],
                                   "MetricName": m["metricStat"]["metric"]["metricName"],
                                   "Dimensions": [{"Name": d["name"], "Value": d["value"]}
                                                  for d in m["metricStat"]["metric"]["dimensions"]]}}})}
                           for m in metrics.values()]}}}
        assert api_errors("application-autoscaling", "PutScalingPolicy", request) == ""


def test_no_task_starts_before_its_way_out_and_its_rules_exist(plan):
    """On the first `pulumi up` a task started before the NAT route, the endpoints or its
    security group's rules could not pull its image (and the circuit breaker would fail the
    deploy): every one-off run and service waits for them, and for the data services' rules."""
    needed = [*plan.of_type("aws:ec2/natGateway:NatGateway"), *plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint"),
              *[a for a in plan.of_type("aws:ec2/routeTableAssociation:RouteTableAssociation") if "private" in a.name],
              *plan.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")]
    db_rule = plan.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "postgres-from-0")
    cache_rule = plan.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "redis-from-0")
    # The one-off tasks' runs (the service-linked roles' command starts no task).
    runs = [c for c in plan.of_type("command:local:Command") if "deploy.run_task" in c.inputs["create"]]
    assert len(runs) == 3
    starters = [*plan.of_type("aws:ecs/service:Service"), *runs]
    for starter in starters:
        missing = [r.name for r in needed if not plan.depends_transitively(starter.urn, r.urn)
                   and not r.name.startswith("entry-")]
        assert missing == [], (starter.name, missing)
    assert plan.depends_transitively(plan.one("command:local:Command", "database-bootstrap-run").urn, db_rule.urn)
    assert plan.depends_transitively(plan.one("aws:ecs/service:Service", "api-service").urn, cache_rule.urn)


def test_database_snapshots_are_kept_under_the_backups_bucket_s_lock(plan):
    """Daily AWS Backup snapshots of RDS in a vault of the account and region, kept
    backupRetentionDays, locked as the backups bucket: compliance in production (after its
    grace days), governance on staging; failures on the alarm topic."""
    production = plan.stack == "production"
    vault = plan.one("aws:backup/vault:Vault")
    lock = plan.one("aws:backup/vaultLockConfiguration:VaultLockConfiguration").inputs
    assert vault.protect is production
    assert (lock.get("changeableForDays") is not None) is production
    retention = 35 if production else 14
    (rule,) = plan.one("aws:backup/plan:Plan").inputs["rules"]
    assert rule["lifecycle"]["deleteAfter"] == retention
    assert lock["minRetentionDays"] <= retention <= lock["maxRetentionDays"]
    selection = plan.one("aws:backup/selection:Selection")
    db = plan.one("aws:rds/instance:Instance")
    assert selection.inputs["resources"] == [plan.states[db.urn][1]["arn"]]
    notifications = plan.one("aws:backup/vaultNotifications:VaultNotifications")
    topic = plan.one("aws:sns/topic:Topic")
    assert notifications.inputs["snsTopicArn"] == plan.states[topic.urn][1]["arn"]
    # A failed or expired job reaches SNS as BACKUP_JOB_COMPLETED (tests/test_windows.py).
    assert "BACKUP_JOB_COMPLETED" in notifications.inputs["backupVaultEvents"]


def test_every_service_that_alarms_may_publish_to_the_encrypted_topic(plan):
    """AWS's managed SNS key admits no AWS service: the topic's key is the stack's own, and its
    policy and the topic's admit CloudWatch, RDS's events and AWS Backup, for this account only."""
    topic = plan.one("aws:sns/topic:Topic")
    key = plan.one("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] != "alias/aws/sns"
    assert key.urn in topic.property_dependencies["kmsMasterKeyId"] and key.inputs["enableKeyRotation"] is True
    publishers = {"cloudwatch.amazonaws.com", "events.rds.amazonaws.com", "backup.amazonaws.com"}
    statements = json.loads(key.inputs["policy"])["Statement"]
    (encrypt,) = [s for s in statements if s["Principal"].get("Service")]
    assert set(encrypt["Principal"]["Service"]) == publishers
    assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= set(encrypt["Action"])
    # A source condition the KMS request of a service lacks would drop its notifications silently.
    assert "Condition" not in encrypt
    policy = json.loads(plan.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])["Statement"]
    publish = [s for s in policy if isinstance(s["Principal"], dict) and s["Principal"].get("Service")]
    admitted = {service: s.get("Condition") for s in publish for service in s["Principal"]["Service"]
                if s["Action"] == "sns:Publish" and s["Effect"] == "Allow"}
    # Conditions only where the service documents them on its topic policy (CloudWatch, RDS);
    # AWS Backup's documented policy names its principal only.
    this_account = {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert admitted == {"cloudwatch.amazonaws.com": this_account, "events.rds.amazonaws.com": this_account,
                        "backup.amazonaws.com": None}


def test_the_switch_runbook_names_every_protected_resource_the_switch_removes():
    """In production the switch stops at each protected resource only the host placement has;
    the runbook lists exactly those (and the cluster keeps every other protected one)."""
    host, cluster = plan_for("production"), cluster_plan_for("production")
    kept = {r.urn for r in cluster.resources}
    removed = {r.name for r in host.resources if r.protect and r.urn not in kept}
    assert removed, "the switch removes protected resources in production"
    step = (ROOT / "docs" / "runbook.md").read_text().split("**Switch**")[1].split("**Load the data**")[0]
    named = set(re.findall(r"`([a-z0-9-]+)`", step))
    assert removed <= named, removed - named
    assert not {r.name for r in host.resources if r.protect and r.urn in kept} & named, "a kept resource named"


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_the_queues_redis_never_evicts_a_job(stack):
    """Under allkeys-* an execution waiting in the queue can be evicted and vanish; under
    volatile-* a running job's lock (Bull sets it with a TTL) can, and the job runs twice. The
    Redis each queue-mode task uses evicts nothing (configs/redis.py says what each key space
    may lose)."""
    import json

    from configs import redis as redis_config
    from offline.harness import unwrap

    plan = cluster_plan_for(stack)
    groups = {plan.states[g.urn][1]["primaryEndpointAddress"]: g
              for g in plan.of_type("aws:elasticache/replicationGroup:ReplicationGroup")}
    parameters = {plan.states[p.urn][1]["name"]: p for p in plan.of_type("aws:elasticache/parameterGroup:ParameterGroup")}
    queued = [d for t in plan.of_type("aws:ecs/taskDefinition:TaskDefinition")
              for d in json.loads(unwrap(t.inputs["containerDefinitions"]))
              if {"name": "EXECUTIONS_MODE", "value": "queue"} in d["environment"]]
    assert queued
    for definition in queued:
        host = next(e["value"] for e in definition["environment"] if e["name"] == "QUEUE_BULL_REDIS_HOST")
        group = parameters[groups[host].inputs["parameterGroupName"]]
        policy = {p["name"]: p["value"] for p in group.inputs["parameters"]}["maxmemory-policy"]
        assert policy in redis_config.QUEUE_SAFE_POLICIES, (definition["name"], policy)


def test_the_final_snapshot_name_follows_what_replaces_the_instance():
    """A second replacement must not meet the first one's final snapshot (RDS refuses to delete
    an instance whose final snapshot name exists): the suffix is a RandomId kept by exactly the
    inputs the instance is given that replace it, so it changes with each of them."""
    plan = cluster_plan_for("production")
    db = plan.one("aws:rds/instance:Instance")
    suffix = plan.one("random:index/randomId:RandomId", "postgres-final-snapshot")
    keepers = suffix.inputs["keepers"]
    assert set(keepers) == {"identifier_prefix", "engine", "storage_encrypted", "username"}
    camel = {"storage_encrypted": "storageEncrypted"}
    assert all(keepers[k] == str(db.inputs[camel.get(k, k)]) for k in keepers if k != "identifier_prefix")
    assert suffix.urn in db.property_dependencies["finalSnapshotIdentifier"]
    hex_ = plan.states[suffix.urn][1]["hex"]
    assert db.inputs["finalSnapshotIdentifier"] == f"sos-production-postgres-final-{hex_}" and len(hex_) == 8
    # The identifier, the other input that replaces it, is the same prefix and suffix: a
    # replacement is created beside the old instance under a name of its own.
    assert db.inputs["identifier"] == f"{keepers['identifier_prefix']}{hex_}"
    assert suffix.urn in db.property_dependencies["identifier"]


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_log_rds_exports_has_its_retention_before_rds_creates_it(stack):
    """RDS creates `/aws/rds/instance/<identifier>/<log>` with no retention (kept forever) unless
    the group exists first; each one is registered with `logRetentionDays`, before the instance."""
    plan = cluster_plan_for(stack)
    groups = {g.inputs["name"]: g for g in plan.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for db in plan.of_type("aws:rds/instance:Instance"):
        assert db.inputs["enabledCloudwatchLogsExports"]
        for kind in db.inputs["enabledCloudwatchLogsExports"]:
            group = groups.get(f"/aws/rds/instance/{db.inputs['identifier']}/{kind}")
            assert group is not None, (db.name, kind, sorted(groups))
            assert group.inputs["retentionInDays"] == settings.KEYS_BY_NAME["logRetentionDays"].defaults[stack]
            assert plan.depends_transitively(db.urn, group.urn), (db.name, kind)
