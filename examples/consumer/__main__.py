"""Another team's program: what it reads from the platform, through StackReference only.

It checks the contract's major version first (CHANGELOG.md in the platform's repository), reads
the URLs and buckets every stack has, and takes the database endpoint only where the contract
says one exists (the cluster placement; `absentOutputs` lists it elsewhere).
"""

from __future__ import annotations

import pulumi

# The contract's major this program was written against: a new major may have removed or
# renamed what it reads, so it stops with the reason instead of reading the wrong thing.
MAJOR = 1

config = pulumi.Config()
platform = pulumi.StackReference(config.require("platformStack"))


def _checked(version: str) -> str:
    if int(str(version).split(".")[0]) != MAJOR:
        raise ValueError(f"the platform's outputs contract is {version}; this program reads {MAJOR}.x "
                         "(see the platform's CHANGELOG.md)")
    return version


version = platform.require_output("contractVersion").apply(_checked)
pulumi.export("platformContract", version)
pulumi.export("siteUrl", platform.require_output("siteUrl"))
pulumi.export("apiUrl", platform.require_output("apiUrl"))
pulumi.export("imagesBucket", platform.require_output("imagesBucket"))
pulumi.export("s3Region", platform.require_output("s3Region"))
# Only where the platform has one: None on a Docker placement (listed in absentOutputs).
pulumi.export("databaseEndpoint", platform.get_output("databaseEndpoint"))
