"""Revoke ElastiCache's previous AUTH token after a rotation (docs/security.md, Rotating secrets).

    pulumi stack export --show-secrets --stack S | jq -r '<the redis-auth-token result>' \\
        | python -m deploy.cache_token --region R --group ID

A rotation (`secretGenerations.redis`) changes the token with AWS's default strategy, ROTATE: the
new token is added and the old one stays valid, so no task fails while the services roll onto
the new one. Once they have, this sets the current token as the only one (strategy SET, applied
at once) and waits until the group is available again. The token is read from stdin, never from
the command line; nothing it prints holds it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

# ElastiCache's AUTH token rules: 16 to 128 printable ASCII characters, none of these.
FORBIDDEN = set('/"@%') | {" "}


def check_token(token: str) -> str:
    if not 16 <= len(token) <= 128 or not token.isascii() or not token.isprintable() or FORBIDDEN & set(token):
        raise ValueError("stdin: not an ElastiCache AUTH token (16 to 128 printable ASCII characters, "
                         "none of / \" @ % or space)")
    return token


def revoke_previous(client: Any, group: str, token: str, delay: int = 15, attempts: int = 120) -> str:
    """`client`: a boto3 ElastiCache client (a stubbed one in tests). Returns the group's status."""
    found = client.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]
    if not found.get("AuthTokenEnabled"):
        raise ValueError(f"{group}: AUTH is not enabled on this group; nothing to revoke")
    if found["Status"] != "available":
        raise ValueError(f"{group}: status {found['Status']}; wait for the rotation's change to finish "
                         "(available) and run this again")
    client.modify_replication_group(ReplicationGroupId=group, AuthToken=token, AuthTokenUpdateStrategy="SET",
                                    ApplyImmediately=True)
    client.get_waiter("replication_group_available").wait(
        ReplicationGroupId=group, WaiterConfig={"Delay": delay, "MaxAttempts": attempts})
    return "available"


def main(argv: list[str] | None = None, stdin: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cache_token", description=__doc__.splitlines()[0])
    parser.add_argument("--region", required=True)
    parser.add_argument("--group", required=True, help="the replication group's id (pulumi stack output or the console)")
    args = parser.parse_args(argv)
    try:
        token = check_token((stdin or sys.stdin).read().strip())
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    import boto3

    try:
        status = revoke_previous(boto3.client("elasticache", region_name=args.region), args.group, token)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{args.group}: the current token is the only one ({status})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
