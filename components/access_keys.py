"""An IAM identity for a container that cannot take a role, with keys that rotate without a gap.

A group holds the policy (users carry none of their own, AWS FSBP IAM.2); two users, slots `a`
and `b`, belong to it and hold one access key each. Each key is replaced on its slot's schedule
(configs/key_rotation.py) through Pulumi's `replacement_trigger`, create-first: the new key
exists, its dependents move to it, and only then is the old one deleted. The key the containers
use is the newer slot's, so the key a rotation deletes has been idle for half a period.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from components.host_commands import QUIET
from configs import key_rotation

PATH = "/storiesofsoftware/"
ROTATION_TAG = "sos-key-rotation-days"
# IAM is eventually consistent: a new key can be refused for a few seconds after it exists. Its
# users wait this long before they move to it (only when a key is new: at a rotation).
KEY_SETTLE_SECONDS = 20


@dataclass
class RotatingAccessKeyArgs:
    purpose: str
    policy: pulumi.Input[str]
    rotation_days: int
    today: dt.date


class RotatingAccessKey(pulumi.ComponentResource):
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    active_slot: str
    # slot -> when its key was created (RFC 3339), for the key-age alert.
    created: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: RotatingAccessKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:RotatingAccessKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        group = aws.iam.Group(name, path=PATH, opts=child)
        policy = aws.iam.GroupPolicy(f"{name}-policy", group=group.name, policy=args.policy, opts=child)
        generations = key_rotation.generations(args.today, args.rotation_days)
        self.active_slot = key_rotation.active_slot(args.today, args.rotation_days)
        keys: dict[str, aws.iam.AccessKey] = {}
        for slot in key_rotation.SLOTS:
            user = aws.iam.User(
                f"{name}-{slot}", path=PATH,
                tags={"purpose": args.purpose, "sos-key-slot": slot, ROTATION_TAG: str(args.rotation_days)},
                opts=child)
            member = aws.iam.UserGroupMembership(f"{name}-{slot}-member", user=user.name, groups=[group.name],
                                                 opts=child)
            keys[slot] = aws.iam.AccessKey(
                f"{name}-{slot}-key", user=user.name,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # A key is handed to a container only once the group grants it something.
                    depends_on=[member, policy],
                    replacement_trigger=generations[slot],
                    # Create-first, said explicitly: the old key serves until its dependents moved.
                    delete_before_replace=False))
        active = keys[self.active_slot]
        # Runs where `pulumi up` runs, once per new key (its id is the trigger).
        settled = command.local.Command(
            f"{name}-{self.active_slot}-key-settled", create=f"sleep {KEY_SETTLE_SECONDS}",
            triggers=[active.id], logging=QUIET, opts=child)
        # Through the wait: whoever takes the key id depends on it.
        self.access_key_id = pulumi.Output.all(active.id, settled.id).apply(lambda v: v[0])
        self.secret_access_key = pulumi.Output.secret(active.secret)
        self.created = {slot: key.create_date for slot, key in keys.items()}
        self.register_outputs({})
