"""One long-running service of the cluster placement on ECS Fargate (issue 19): the counterpart of
ContainerService on the host, with the same defaults (configs/ecs.py renders the container).

Per service: a log group with retention, an execution role that may read only this service's
secrets (and pull and log), a task role of its own (least privilege: what `task_policy` names),
a task definition, and a service in private subnets without public addresses that deploys
rolling (100 % stays healthy, the circuit breaker rolls a failed deployment back, and
`pulumi up` waits for a steady state), autoscaled by target
tracking on CPU and, behind the load balancer, on requests per target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.image_cache import ImageCache, ImagePull, execution_pull_policy
from configs import ecs

RUNS_TAG = "runs"
DEPLOY_TAG = "deploy"
MANAGED_EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def _assume_ecs_tasks(account: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        # Only this account's tasks (the confused-deputy guard AWS recommends).
        "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]})


def secrets_read_policy(secret_arns: Sequence[str]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReadThisServicesSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
        "Resource": sorted(set(secret_arns))}]})


@dataclass
class Scaling:
    minimum: int
    maximum: int
    cpu_percent: int = 60
    # Requests per target per minute, when behind the load balancer (its `app/…/targetgroup/…` label).
    requests_per_target: int | None = None
    load_balancer_label: pulumi.Input[str] | None = None
    # Services behind the edge, not the load balancer: the load balancer's requests per task of
    # this service per minute (metric math over the edge's target group and Container Insights).
    requests_per_task: int | None = None
    edge_target: tuple[pulumi.Input[str], pulumi.Input[str]] | None = None  # (LB, target group) ARN suffixes


@dataclass
class ClusterServiceArgs:
    spec: ecs.TaskSpec
    name_prefix: str
    cluster_arn: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    log_retention_days: int
    scaling: Scaling
    # variable -> ARN (or `<arn>:<json key>::`) of what the container receives as a secret
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # The ARNs the execution role may read (the secrets' own ARNs, without JSON keys).
    secret_arns: Sequence[pulumi.Input[str]] = ()
    task_policy: pulumi.Input[str] | None = None
    target_group_arn: pulumi.Input[str] | None = None
    # A Cloud Map service the tasks register in (service discovery).
    discovery_arn: pulumi.Input[str] | None = None
    # Plain variables known only at deploy time (a bucket's or the database's name).
    environment_inputs: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    # One task that must never run twice (n8n's main process: two would fire every schedule and
    # poll twice; several mains need n8n's licensed multi-main): the old task stops before the
    # new one starts, as the host replaces its container. The named exception to rolling.
    stop_first: bool = False
    # Where the image is pulled from (ECR's pull-through cache); None: `spec.image` as it is.
    image_cache: ImageCache | None = None
    depends_on: Sequence[pulumi.Resource] = ()


def define_task(parent: pulumi.Resource, name: str, spec: ecs.TaskSpec, name_prefix: str, log_retention_days: int,
                secrets: Mapping[str, pulumi.Input[str]], secret_arns: Sequence[pulumi.Input[str]],
                task_policy: pulumi.Input[str] | None, runs: str = "service",
                environment_inputs: Mapping[str, pulumi.Input[str]] | None = None,
                image_cache: ImageCache | None = None) -> tuple[aws.ecs.TaskDefinition, aws.iam.Role]:
    """A task's log group, execution role (pull, log, read its own secrets), task role (what
    `task_policy` allows) and task definition: what a service and a one-off task both need."""
    child = pulumi.ResourceOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=parent)).account_id
    logs = aws.cloudwatch.LogGroup(f"{name}-logs", name=spec.log_group, retention_in_days=log_retention_days,
                                   opts=child)
    execution = aws.iam.Role(f"{name}-execution", assume_role_policy=account.apply(_assume_ecs_tasks),
                             description=f"{name_prefix} {spec.name}: pull, log, read its secrets", opts=child)
    # Every policy of both roles: what uses the definition (a service, a one-off task) makes ECS
    # assume them, and IAM is eventually consistent, so the definition comes after all of them.
    grants: list[pulumi.Resource] = [aws.iam.RolePolicyAttachment(
        f"{name}-execution-managed", role=execution.name, policy_arn=MANAGED_EXECUTION_POLICY, opts=child)]
    pull = image_cache.pull(spec.image) if image_cache is not None else ImagePull(image=spec.image)
    readable = [*secret_arns, *([pull.credentials_arn] if pull.credentials_arn is not None else [])]
    if readable:
        grants.append(aws.iam.RolePolicy(f"{name}-execution-secrets", role=execution.id,
                                         policy=pulumi.Output.all(*readable).apply(secrets_read_policy), opts=child))
    if pull.cache_repositories is not None:
        grants.append(aws.iam.RolePolicy(f"{name}-execution-pull-through", role=execution.id,
                                         policy=pulumi.Output.from_input(pull.cache_repositories).apply(
                                             execution_pull_policy), opts=child))
    task_role = aws.iam.Role(f"{name}-task", assume_role_policy=account.apply(_assume_ecs_tasks),
                             description=f"{name_prefix} {spec.name}: what the application may do", opts=child)
    if task_policy is not None:
        grants.append(aws.iam.RolePolicy(f"{name}-task-policy", role=task_role.id, policy=task_policy, opts=child))

    request = pulumi.Output.all(execution.arn, task_role.arn, pulumi.Output.all(**dict(secrets)),
                                pulumi.Output.all(**dict(environment_inputs or {})), pull.image,
                                pull.credentials_arn).apply(
        lambda v: ecs.register_request(
            ecs.TaskSpec(**{**spec.__dict__, "secrets": dict(v[2]), "environment": {**spec.environment, **dict(v[3] or {})},
                            "image": v[4], "repository_credentials": v[5]}),
            f"{name_prefix}-{spec.name}", v[0], v[1]))
    cpu, memory = ecs.fargate_size(spec.cpus, spec.memory_mb)
    definition = aws.ecs.TaskDefinition(
        f"{name}-task-definition", family=f"{name_prefix}-{spec.name}", network_mode="awsvpc",
        requires_compatibilities=["FARGATE"], cpu=str(cpu), memory=str(memory),
        execution_role_arn=execution.arn, task_role_arn=task_role.arn,
        runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
            operating_system_family="LINUX", cpu_architecture="X86_64"),
        container_definitions=request.apply(lambda r: json.dumps(r["containerDefinitions"])),
        # `runs`: a long-running service's task, or a one-off (which has no health check to pass).
        tags={"Name": f"{name_prefix}-{spec.name}", RUNS_TAG: runs},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[logs, *grants, *pull.ready]))
    return definition, task_role


class ClusterService(pulumi.ComponentResource):
    service: aws.ecs.Service
    task_definition: aws.ecs.TaskDefinition
    task_role: aws.iam.Role

    def __init__(self, name: str, args: ClusterServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ClusterService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        spec = args.spec
        if args.scaling.minimum < 1 or args.scaling.maximum < args.scaling.minimum:
            raise ValueError(f"{spec.name}: scaling bounds {args.scaling.minimum}..{args.scaling.maximum}")
        if args.stop_first and args.scaling.maximum != 1:
            raise ValueError(f"{spec.name}: a stop-first service runs exactly one task")
        self.task_definition, self.task_role = define_task(
            self, name, spec, args.name_prefix, args.log_retention_days, args.secrets, args.secret_arns,
            args.task_policy, environment_inputs=args.environment_inputs, image_cache=args.image_cache)

        load_balancers = []
        if args.target_group_arn is not None and spec.port is not None:
            load_balancers = [aws.ecs.ServiceLoadBalancerArgs(
                target_group_arn=args.target_group_arn, container_name=spec.name, container_port=spec.port)]
        self.service = aws.ecs.Service(
            # Autonamed: a replacement (a new launch type, say) starts beside the old service.
            f"{name}-service", cluster=args.cluster_arn,
            task_definition=self.task_definition.arn, desired_count=args.scaling.minimum,
            launch_type="FARGATE", platform_version="LATEST",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=list(args.subnet_ids), security_groups=list(args.security_group_ids),
                assign_public_ip=False),
            load_balancers=load_balancers,
            # Found by name from the other tasks (the edge's upstreams), one A record per task.
            service_registries=aws.ecs.ServiceServiceRegistriesArgs(registry_arn=args.discovery_arn)
            if args.discovery_arn is not None else None,
            health_check_grace_period_seconds=60 if load_balancers else None,
            # A new version starts beside the old one; the old goes only once the new is healthy.
            deployment_minimum_healthy_percent=0 if args.stop_first else 100,
            deployment_maximum_percent=100 if args.stop_first else 200,
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(enable=True, rollback=True),
            # `pulumi up` returns only once the deployment settled.
            wait_for_steady_state=True,
            propagate_tags="SERVICE", enable_execute_command=False,
            tags={"Name": f"{args.name_prefix}-{spec.name}", DEPLOY_TAG: "stop-first" if args.stop_first else "rolling"},
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on),
                                        # Autoscaling owns the count once the service exists.
                                        ignore_changes=["desiredCount"]))

        resource_id = pulumi.Output.concat("service/", args.cluster_name, "/", self.service.name)
        target = aws.appautoscaling.Target(
            f"{name}-scaling", service_namespace="ecs", scalable_dimension="ecs:service:DesiredCount",
            resource_id=resource_id, min_capacity=args.scaling.minimum, max_capacity=args.scaling.maximum,
            opts=child)
        self._tracking(name, "cpu", target, aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
            predefined_metric_type="ECSServiceAverageCPUUtilization"), args.scaling.cpu_percent)
        if args.scaling.requests_per_task is not None and args.scaling.edge_target is not None:
            self._requests_per_task(name, target, args.scaling, args.cluster_name, self.service.name)
        if args.scaling.requests_per_target is not None and args.scaling.load_balancer_label is not None:
            self._tracking(name, "requests", target, aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs(
                predefined_metric_type="ALBRequestCountPerTarget", resource_label=args.scaling.load_balancer_label),
                args.scaling.requests_per_target)
        self.register_outputs({})

    def _requests_per_task(self, name: str, target: aws.appautoscaling.Target, scaling: Scaling,
                           cluster_name: pulumi.Input[str], service_name: pulumi.Input[str]) -> None:
        spec = aws.appautoscaling
        load_balancer, target_group = scaling.edge_target  # type: ignore[misc]

        def metric(id_: str, stat: str, namespace: str, metric_name: str,
                   dimensions: dict[str, pulumi.Input[str]]) -> spec.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricArgs:
            return spec.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricArgs(
                id=id_, return_data=False,
                metric_stat=spec.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricMetricStatArgs(
                    stat=stat, metric=spec.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricMetricStatMetricArgs(
                        namespace=namespace, metric_name=metric_name,
                        dimensions=[{"name": k, "value": v} for k, v in dimensions.items()])))

        spec.Policy(
            f"{name}-scale-on-requests", policy_type="TargetTrackingScaling", resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension, service_namespace=target.service_namespace,
            target_tracking_scaling_policy_configuration=spec.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                customized_metric_specification=spec.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationArgs(
                    metrics=[
                        metric("requests", "Sum", "AWS/ApplicationELB", "RequestCount",
                               {"LoadBalancer": load_balancer, "TargetGroup": target_group}),
                        metric("tasks", "Average", "ECS/ContainerInsights", "RunningTaskCount",
                               {"ClusterName": cluster_name, "ServiceName": service_name}),
                        # Every request the edge takes, per running task of this service.
                        spec.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricArgs(
                            id="per_task", expression="requests / tasks", label="requests per task",
                            return_data=True),
                    ]),
                target_value=scaling.requests_per_task, scale_out_cooldown=60, scale_in_cooldown=300),
            opts=pulumi.ResourceOptions(parent=self))

    def _tracking(self, name: str, metric: str, target: aws.appautoscaling.Target,
                  spec: aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs,
                  value: int) -> None:
        aws.appautoscaling.Policy(
            f"{name}-scale-on-{metric}", policy_type="TargetTrackingScaling", resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension, service_namespace=target.service_namespace,
            target_tracking_scaling_policy_configuration=aws.appautoscaling.PolicyTargetTrackingScalingPolicyConfigurationArgs(
                predefined_metric_specification=spec, target_value=value,
                # Out quickly, in slowly: a burst is served, a lull does not flap.
                scale_out_cooldown=60, scale_in_cooldown=300),
            opts=pulumi.ResourceOptions(parent=self))


@dataclass
class ClusterTaskArgs:
    """A one-off task (the database bootstrap, the API's migrations): run to completion on each
    new task definition, before what depends on it, failing `pulumi up` when it fails."""

    spec: ecs.TaskSpec
    name_prefix: str
    region: str
    cluster_arn: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    log_retention_days: int
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_arns: Sequence[pulumi.Input[str]] = ()
    task_policy: pulumi.Input[str] | None = None
    environment_inputs: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    timeout_seconds: int = 1800
    image_cache: ImageCache | None = None
    depends_on: Sequence[pulumi.Resource] = ()


# Run from the project directory, as `pulumi up` runs every local command: the program's own
# interpreter (Pulumi.yaml's virtualenv), which has boto3.
PROGRAM_PYTHON = "venv/bin/python"
RUN_TASK = f"{PROGRAM_PYTHON} -m deploy.run_task"


def run_task_command(region: str, cluster: str, task_definition: str, container: str, subnets: Sequence[str],
                     security_groups: Sequence[str], timeout: int) -> str:
    return (f"{RUN_TASK} --region {region} --cluster {cluster} --task-definition {task_definition} "
            f"--container {container} --subnets {','.join(subnets)} "
            f"--security-groups {','.join(security_groups)} --timeout {timeout}")


class ClusterTask(pulumi.ComponentResource):
    task_definition: aws.ecs.TaskDefinition
    task_role: aws.iam.Role
    run: command.local.Command

    def __init__(self, name: str, args: ClusterTaskArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ClusterTask", name, None, opts)
        spec = args.spec
        self.task_definition, self.task_role = define_task(
            self, name, spec, args.name_prefix, args.log_retention_days, args.secrets, args.secret_arns,
            args.task_policy, runs="one-off", environment_inputs=args.environment_inputs, image_cache=args.image_cache)
        create = pulumi.Output.all(args.cluster_arn, self.task_definition.arn, pulumi.Output.all(*args.subnet_ids),
                                   pulumi.Output.all(*args.security_group_ids)).apply(
            lambda v: run_task_command(args.region, v[0], v[1], spec.name, v[2], v[3], args.timeout_seconds))
        self.run = command.local.Command(
            f"{name}-run", create=create,
            # A new revision (image, command, settings) runs again; an unchanged one does not.
            triggers=[self.task_definition.arn],
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)))
        self.register_outputs({})
