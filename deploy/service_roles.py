"""Make sure the account has the service-linked roles the cluster placement needs, before the
first ECS cluster, service or scaling target: `pulumi up` runs it (issue 26, item 8).

    python -m deploy.service_roles --region R ecs.amazonaws.com ecs.application-autoscaling.amazonaws.com

ECS creates AWSServiceRoleForECS itself at CreateCluster, but on a fresh account the first
CreateCluster or CreateService often fails anyway ("Unable to assume the service linked role.
Please verify that the ECS service linked role exists.", the workaround in the reports is
`aws iam create-service-linked-role`). A Pulumi resource would own the role and delete it with
the stack, while every stack and every other ECS user of the account shares it: here the role is
created when missing, never deleted, and the run waits until IAM returns it. Idempotent.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

# After IAM returns a new role, services may still not assume it for some seconds.
SETTLE_SECONDS = 15.0


def _exists(iam: Any, service: str) -> bool:
    return bool(iam.list_roles(PathPrefix=f"/aws-service-role/{service}/")["Roles"])


def ensure(iam: Any, services: list[str], *, sleep: Any = time.sleep, attempts: int = 20) -> list[str]:
    """Create each service's linked role if the account lacks it; the names of those created."""
    created = []
    for service in services:
        if _exists(iam, service):
            continue
        try:
            iam.create_service_linked_role(AWSServiceName=service)
            created.append(service)
        except iam.exceptions.EntityAlreadyExistsException:
            pass  # made meanwhile (another stack's run, or ECS itself)
        except iam.exceptions.InvalidInputException as exc:
            # IAM's other answer when it exists: "Service role name ... has been taken in this account".
            if "has been taken" not in str(exc):
                raise
    for service in created:
        for _ in range(attempts):
            if _exists(iam, service):
                break
            sleep(1.0)
        else:
            raise RuntimeError(f"IAM did not return the service-linked role of {service}")
    if created:
        sleep(SETTLE_SECONDS)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.service_roles", description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("services", nargs="+", help="service principals, such as ecs.amazonaws.com")
    args = parser.parse_args(argv)
    import boto3

    created = ensure(boto3.client("iam", region_name=args.region), args.services)
    print(f"created: {', '.join(created)}" if created else "every service-linked role exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
