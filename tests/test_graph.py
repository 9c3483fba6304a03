"""Table-driven checks over the whole registered graph of every stack."""

from __future__ import annotations

import re
import textwrap

import pytest

from configs.secrets import SPECS
from offline import canned, harness
from offline.harness import Secret, iter_plain_strings, unwrap
from testsupport.plans import CLOUD_STACKS, STACKS, cluster_plan_for, plan_for

# Types the providers have replaced; the engine still accepts them, reviewers should not.
DEPRECATED_TYPES = re.compile(
    r"^(aws:s3/\w+V2:\w+V2"                      # the S3 *V2 family, renamed in pulumi-aws 7
    r"|aws:s3/bucketObject:BucketObject"          # superseded by BucketObjectv2
    r"|aws:ec2/securityGroupRule:SecurityGroupRule"  # superseded by vpc.SecurityGroup*Rule
    r"|cloudflare:index/record:Record"            # superseded by DnsRecord in cloudflare 6
    r"|cloudflare:index/pageRule:PageRule"        # superseded by rulesets
    r"|docker:index/image:Image)$"                # builds, not pulls: we pin RemoteImage
)


def test_dev_registers_nothing_from_aws_or_cloudflare():
    plan = harness.run("dev")
    foreign = [r.type for r in plan.resources
               if r.type.split(":")[0] in ("aws", "cloudflare")
               or r.type in ("pulumi:providers:aws", "pulumi:providers:cloudflare")]
    assert foreign == []
    assert not [tok for tok, _ in plan.invokes if tok.split(":")[0] in ("aws", "cloudflare")]


def test_no_deprecated_resource_type_is_registered(plan):
    assert [r.type for r in plan.resources if DEPRECATED_TYPES.match(r.type)] == []


def test_cloud_and_docker_resources_use_explicit_providers(plan):
    # A default provider would pick up whatever region or DOCKER_HOST the operator's shell has.
    for r in plan.resources:
        if r.custom and r.type.split(":")[0] in ("aws", "docker", "cloudflare"):
            assert r.provider_urn, f"{r.type} {r.name} uses a default provider"
            assert r.provider_urn.split("::")[-2].split("$")[-1].startswith("pulumi:providers:")


@pytest.mark.parametrize("stack,placement", [(s, "local" if s == "dev" else "host") for s in STACKS]
                         + [(s, "cluster") for s in CLOUD_STACKS])
def test_every_argument_the_program_passes_is_registered(stack, placement):
    """What the policy pack, the provider's validator and every test judge is what `pulumi up`
    would send: no argument dropped because the mocks left an output unanswered."""
    plan = cluster_plan_for(stack) if placement == "cluster" else plan_for(stack)
    assert plan.passed and plan.lost_inputs() == []


def test_a_lost_argument_is_found(tmp_path):
    """An RDS instance whose subnet group's autonamed `name` the mocks do not answer: the SDK
    registers the instance without `dbSubnetGroupName`, and the check names it."""
    program = _program(tmp_path, """
        import pulumi_aws as aws
        group = aws.rds.SubnetGroup("subnets", subnet_ids=["subnet-1"])
        aws.rds.Instance("db", instance_class="db.t4g.micro", engine="postgres", db_subnet_group_name=group.name)
    """)

    class Unanswered(canned.CannedMocks):
        def new_resource(self, args):
            rid, state = super().new_resource(args)
            return rid, {k: v for k, v in state.items() if not (args.typ == "aws:rds/subnetGroup:SubnetGroup" and k == "name")}

    assert harness.run("dev", program_dir=program).lost_inputs() == []
    lost = harness.run("dev", program_dir=program, mocks=Unanswered("dev")).lost_inputs()
    assert lost == [("aws:rds/instance:Instance", "db", ["db_subnet_group_name"])]


def test_no_duplicate_resource_names(plan):
    assert plan.duplicates == []


def test_docker_networks_and_the_data_one_is_internal(plan):
    networks = {r.name: r for r in plan.of_type("docker:index/network:Network")}
    cloud = plan.stack != "dev"
    assert set(networks) == {"networks-edge", "networks-data"} | ({"networks-egress"} if cloud else set())
    assert networks["networks-data"].inputs["internal"] is True
    assert networks["networks-edge"].inputs["internal"] is False
    if cloud:
        egress = networks["networks-egress"].inputs
        assert egress["internal"] is False
        assert egress["options"] == {"com.docker.network.bridge.enable_icc": "false"}
    for net in networks.values():
        assert net.inputs["name"].startswith(f"sos-{plan.stack}-")
        assert net.delete_before_replace, "a named network clashes with itself on replace"
        labels = {item["label"]: item["value"] for item in net.inputs["labels"]}
        assert labels["stack"] == plan.stack


EXPECTED_SECRETS = {"postgresSuperuser", "postgresApp", "postgresN8n", "postgresMonitoring",
                    "redis", "jwtAccess", "jwtRefresh", "n8nEncryptionKey", "grafanaAdmin", "backupCipher"}


def test_internal_credentials_are_generated_and_secret(plan):
    passwords = {r.name.removeprefix("secrets-"): r
                 for r in plan.of_type("random:index/randomPassword:RandomPassword")}
    expected = EXPECTED_SECRETS | ({"minioRoot"} if plan.stack == "dev" else set())
    assert set(passwords) == expected
    for name, r in passwords.items():
        assert "result" in r.additional_secret_outputs, name
        assert r.inputs["length"] >= 32, name
        # Only what no rotation can bring back is protected (a protected secret cannot be
        # replaced, so it could not rotate).
        assert r.protect is (plan.stack == "production" and SPECS[name].irreplaceable), name
    assert {name for name, spec in SPECS.items() if spec.irreplaceable} == {"n8nEncryptionKey", "backupCipher"}


def find_leaks(plan: harness.Plan) -> list[str]:
    """Where a known secret (or a line of a multi-line one) sits in a plain input or output."""
    pieces = set()
    for secret in plan.secret_values:
        pieces.add(secret.strip())
        pieces.update(line.strip() for line in secret.strip().splitlines()[1:-1])
    pieces = {p for p in pieces if len(p) >= 8}
    leaks = []
    for r in plan.resources:
        for path, text in iter_plain_strings(r.inputs):
            if any(p in text for p in pieces):
                leaks.append(f"{r.name} {path}")
    for path, text in iter_plain_strings(plan.outputs):
        if any(p in text for p in pieces):
            leaks.append(f"output {path}")
    return leaks


def test_no_secret_value_in_any_plain_input_or_output(plan):
    assert plan.secret_values, "the harness must know the generated secrets"
    assert find_leaks(plan) == []


def test_the_leak_check_does_find_a_leak(tmp_path):
    """The check above is only worth something if it catches a secret copied into plain text."""
    program = _program(tmp_path, """
        import pulumi, pulumi_random as random
        pw = random.RandomPassword("pw", length=16)
        pulumi.export("oops", pw.result.apply(lambda v: v))
        random.RandomPassword("echo", length=16, keepers={"copy": pulumi.Output.unsecret(pw.result)})
    """)
    plan = harness.run("dev", program_dir=program)
    assert canned.mock_password("pw", 16) in plan.secret_values
    assert find_leaks(plan) == ["echo keepers.copy"]
    assert isinstance(plan.outputs["oops"], Secret), "secretness flows into derived outputs"


def test_secret_outputs_of_providers_stay_secret_in_the_harness(tmp_path):
    program = _program(tmp_path, """
        import pulumi, pulumi_random as random, pulumi_tls as tls
        pulumi.export("pw", random.RandomPassword("pw", length=16).result)
        pulumi.export("key", tls.PrivateKey("k", algorithm="ED25519").private_key_openssh)
        pulumi.export("pub", tls.PrivateKey("k2", algorithm="ED25519").public_key_openssh)
    """)
    plan = harness.run("dev", program_dir=program)
    assert isinstance(plan.outputs["pw"], Secret)
    assert isinstance(plan.outputs["key"], Secret)
    assert not isinstance(plan.outputs["pub"], Secret)


def test_duplicate_names_are_reported(tmp_path):
    program = _program(tmp_path, """
        import pulumi_random as random
        random.RandomPassword("same", length=16)
        random.RandomPassword("same", length=20)
    """)
    plan = harness.run("dev", program_dir=program)
    assert len(plan.duplicates) == 1 and plan.duplicates[0].endswith("::same")


def test_each_run_has_a_fresh_root_stack(tmp_path):
    harness.run("staging")
    plan = harness.run("dev")
    assert all(r.urn.startswith("urn:pulumi:dev::") for r in plan.resources)
    assert not plan.of_type("aws:ec2/instance:Instance")


@pytest.mark.parametrize("stack", STACKS)
def test_stack_outputs(stack):
    plan = harness.run(stack)
    domain = {"dev": "localhost", "staging": "staging.storiesofsoftware.com",
              "production": "storiesofsoftware.com"}[stack]
    outputs = unwrap(plan.outputs)
    assert outputs["siteUrl"] == f"https://{domain}"
    assert outputs["apiUrl"] == f"https://api.{domain}"
    assert ("hostPublicIp" in outputs) is (stack != "dev")


def _program(tmp_path, body: str):
    (tmp_path / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text(textwrap.dedent(body))
    return tmp_path
