"""examples/consumer: another team's program, run against the outputs of every stack and
placement through StackReference (issue 28). What it reads must be there, with the meaning it
expects; a new major of the contract stops it with the reason."""

from __future__ import annotations

import pytest
from pulumi.runtime.mocks import MockResourceArgs

from offline import harness
from offline.canned import CannedMocks
from testsupport.plans import cluster_plan_for, plan_for
from testsupport.tools import ROOT

CONSUMER = ROOT / "examples" / "consumer"
PLANS = [("dev", False), ("staging", False), ("production", False), ("staging", True), ("production", True)]


class Platform(CannedMocks):
    """The mock engine, answering the StackReference with a plan's outputs."""

    def __init__(self, outputs: dict) -> None:
        super().__init__(stack="example")
        self.outputs = {k: harness.unwrap(v) for k, v in outputs.items()}
        self.secret_names = [k for k, v in outputs.items() if isinstance(v, harness.Secret)]

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        if args.typ == "pulumi:pulumi:StackReference":
            return args.name, {"name": args.name, "outputs": self.outputs,
                               "secretOutputNames": self.secret_names}
        return super().new_resource(args)


def _consume(outputs: dict) -> harness.Plan:
    return harness.run("example", program_dir=CONSUMER, mocks=Platform(outputs))


@pytest.mark.parametrize(("stack", "on_cluster"), PLANS)
def test_the_consumer_reads_what_every_stack_exports(stack, on_cluster):
    platform = (cluster_plan_for(stack) if on_cluster else plan_for(stack)).outputs
    got = _consume(dict(platform)).outputs
    for name in ("siteUrl", "apiUrl", "imagesBucket", "s3Region"):
        assert got[name] == platform[name], name
    assert got["platformContract"] == platform["contractVersion"]
    # The database endpoint where the contract has one; nothing (not an error) elsewhere.
    assert got.get("databaseEndpoint") == (platform["databaseEndpoint"] if on_cluster else None)
    assert ("databaseEndpoint" in platform["absentOutputs"]) is not on_cluster


def test_a_new_major_of_the_contract_stops_the_consumer_with_the_reason():
    outputs = dict(plan_for("production").outputs) | {"contractVersion": "2.0.0"}
    with pytest.raises(Exception, match=r"contract is 2\.0\.0; this program reads 1\.x"):
        _consume(outputs)
