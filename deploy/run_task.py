"""Run one ECS task to completion and fail when it fails: the cluster placement's one-off steps
(the database bootstrap, the API's migrations) as `pulumi up` runs them.

    python -m deploy.run_task --region R --cluster ARN --task-definition ARN --container NAME \\
        --subnets subnet-a,subnet-b --security-groups sg-1 [--timeout 1800]

Exit status 0 only when the task stopped with the container's exit code 0; otherwise the reason
ECS gives and where the container's log is, on stderr. It prints no secret: the task receives
its secrets from Secrets Manager by reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

# Why a task that never started may start a minute later: a new execution role that ECS cannot
# assume yet, its secrets or image not readable yet (IAM is eventually consistent; the first
# `pulumi up` creates the role and runs the task within seconds), an image the pull-through
# cache is still fetching. ECS says so as the task's stop code and reason.
RETRIED_REASONS = ("ResourceInitializationError", "CannotPullContainerError", "unable to assume", "AccessDenied")
RETRY_WAITS = (30.0, 90.0)


def never_started(task: dict[str, Any]) -> bool:
    """Stopped before its container ran, for a reason that passes with time."""
    ran = any(c.get("exitCode") is not None for c in task.get("containers", []))
    reasons = " ".join([task.get("stoppedReason", ""), *(c.get("reason") or "" for c in task.get("containers", []))])
    return (not ran and task.get("stopCode") == "TaskFailedToStart"
            and any(r.lower() in reasons.lower() for r in RETRIED_REASONS))


def run_retrying(ecs: Any, *, sleep: Any = time.sleep, waits: tuple[float, ...] = RETRY_WAITS,
                 **kwargs: Any) -> tuple[int, str]:
    """`run`, again after each wait while the task never started for a passing reason; a task
    whose container ran and failed (a failed migration) is never run twice."""
    notes = []
    for wait in (*waits, None):
        code, message, task = _run(ecs, sleep=sleep, **kwargs)
        if code == 0 or wait is None or task is None or not never_started(task):
            return code, "; ".join([*notes, message])
        notes.append(f"{message} (not started: again in {wait:.0f} s)")
        sleep(wait)
    raise AssertionError("unreachable")


def run(ecs: Any, **kwargs: Any) -> tuple[int, str]:
    code, message, _ = _run(ecs, **kwargs)
    return code, message


def _run(ecs: Any, *, cluster: str, task_definition: str, container: str, subnets: list[str],
        security_groups: list[str], timeout: float, poll: float = 6.0, command: list[str] | None = None,
        environment: dict[str, str] | None = None, started_by: str = "pulumi-up",
        sleep: Any = time.sleep, clock: Any = time.monotonic) -> tuple[int, str, dict[str, Any] | None]:
    """(exit status, message, the stopped task). `ecs` is a boto3 ECS client (a stubbed one in tests). `command`
    and `environment` override the container's (the runbook's restore into RDS)."""
    request: dict[str, Any] = {
        "cluster": cluster, "taskDefinition": task_definition, "launchType": "FARGATE", "count": 1,
        "startedBy": started_by,
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": subnets, "securityGroups": security_groups, "assignPublicIp": "DISABLED"}}}
    if command or environment:
        override: dict[str, Any] = {"name": container}
        if command:
            override["command"] = command
        if environment:
            override["environment"] = [{"name": k, "value": v} for k, v in sorted(environment.items())]
        request["overrides"] = {"containerOverrides": [override]}
    started = ecs.run_task(**request)
    if started.get("failures") or not started.get("tasks"):
        reasons = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')} {f.get('detail', '')}".strip()
                            for f in started.get("failures", []))
        return 1, f"ECS did not start the task: {reasons or 'no task returned'}", None
    task_arn = started["tasks"][0]["taskArn"]
    deadline = clock() + timeout
    while True:
        task = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]
        if task.get("lastStatus") == "STOPPED":
            break
        if clock() >= deadline:
            ecs.stop_task(cluster=cluster, task=task_arn, reason="pulumi up: timed out")
            return 1, f"{task_arn}: still {task.get('lastStatus')} after {timeout:.0f} s; stopped", None
        sleep(poll)
    mine = [c for c in task.get("containers", []) if c.get("name") == container]
    code = mine[0].get("exitCode") if mine else None
    if code == 0:
        return 0, f"{task_arn}: {container} exited 0", task
    reason = (mine[0].get("reason") if mine else None) or task.get("stoppedReason", "")
    return 1, (f"{task_arn}: {container} exited {code if code is not None else 'without a code'}"
               f" ({reason}); its log is in CloudWatch Logs under the task definition's log group"), task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--task-definition", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--subnets", required=True)
    parser.add_argument("--security-groups", required=True)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--command", help="a shell command to run instead of the container's (sh -c)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable for this run only (repeatable)")
    args = parser.parse_args(argv)
    environment = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--env takes NAME=VALUE, got {item!r}")
        environment[name] = value
    import boto3

    code, message = run_retrying(boto3.client("ecs", region_name=args.region), cluster=args.cluster,
                        task_definition=args.task_definition, container=args.container,
                        subnets=args.subnets.split(","), security_groups=args.security_groups.split(","),
                        timeout=args.timeout, command=["sh", "-c", args.command] if args.command else None,
                        environment=environment or None,
                        started_by="pulumi-up" if not (args.command or environment) else "operator")
    print(message, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main())
