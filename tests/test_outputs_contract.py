"""The stack outputs other teams read through StackReference: a contract. Renaming, removing,
retyping an output or letting a secret one go plain fails here, before a consumer breaks."""

from __future__ import annotations

import ipaddress
import re

import pytest

from offline.harness import Secret
from testsupport.plans import cluster_plan_for, plan_for
from testsupport.tools import ROOT

# name -> (type, secret, the placements that export it). Written from the delivery issue's list
# and issue 19's (the load balancer's and the cluster's names), not from the program.
LOCAL, HOST, CLUSTER = "local", "host", "cluster"
EVERYWHERE = frozenset({LOCAL, HOST, CLUSTER})
CONTRACT: dict[str, tuple[type, bool, frozenset[str]]] = {
    "siteUrl": (str, False, EVERYWHERE),
    "apiUrl": (str, False, EVERYWHERE),
    "n8nUrl": (str, False, EVERYWHERE),
    "grafanaUrl": (str, False, frozenset({LOCAL, HOST})),
    "hostPublicIp": (str, False, frozenset({HOST})),
    "contentBucket": (str, False, EVERYWHERE),
    "imagesBucket": (str, False, EVERYWHERE),
    "backupBucket": (str, False, EVERYWHERE),
    "s3Endpoint": (str, False, EVERYWHERE),
    "s3Region": (str, False, EVERYWHERE),
    "databaseUrl": (str, True, EVERYWHERE),
    "redisUrl": (str, True, EVERYWHERE),
    # Contract 1.1.0 (issue 28): where another team can reach the database, with its own role.
    "databaseEndpoint": (str, False, frozenset({CLUSTER})),
    "cloudflareZoneId": (str, False, frozenset({HOST, CLUSTER})),
    "loadBalancerName": (str, False, frozenset({CLUSTER})),
    "clusterName": (str, False, frozenset({CLUSTER})),
}
SHAPES = {
    "siteUrl": r"https://[a-z0-9.-]+", "apiUrl": r"https://api\.[a-z0-9.-]+", "n8nUrl": r"https://n8n\.[a-z0-9.-]+",
    "grafanaUrl": r"https://grafana\.[a-z0-9.-]+", "s3Endpoint": r"https?://[a-z0-9.:-]+",
    "s3Region": r"[a-z]{2}(-[a-z]+)+-\d", "cloudflareZoneId": r"[0-9a-f]{32}",
    "databaseUrl": r"postgres(ql)?://.+", "redisUrl": r"rediss?://.+",
    "databaseEndpoint": r"[a-z0-9.-]+\.rds\.amazonaws\.com:5432",
    # ALB names: 1-32 letters, digits and hyphens.
    "loadBalancerName": r"[A-Za-z0-9-]{1,32}", "clusterName": r"[A-Za-z0-9_-]{1,255}",
}
# The contract's version and its deprecations (CHANGELOG.md), written from it, not the program.
VERSION = "1.1.0"
DEPRECATED = {"databaseUrl": "2.0.0", "redisUrl": "2.0.0"}
PLANS = [("dev", LOCAL), ("staging", HOST), ("production", HOST), ("staging", CLUSTER), ("production", CLUSTER)]


def _plan(stack: str, placement: str):
    return cluster_plan_for(stack) if placement == CLUSTER else plan_for(stack)


@pytest.mark.parametrize(("stack", "placement"), PLANS)
def test_outputs_match_the_contract(stack, placement):
    outputs = dict(_plan(stack, placement).outputs)
    expected = {name for name, (_, _, where) in CONTRACT.items() if placement in where}
    absent = set(outputs.pop("absentOutputs"))
    assert outputs.pop("contractVersion") == VERSION
    deprecated = outputs.pop("deprecatedOutputs")
    assert set(deprecated) == {name for name in DEPRECATED if name in expected}
    for name, notice in deprecated.items():
        assert notice == {"use": notice["use"], "removedIn": DEPRECATED[name]}, name
    assert set(outputs) == expected, "an output was added, renamed or removed: update the contract and docs/architecture.md"
    assert absent == set(CONTRACT) - expected, "every contract output not exported is named in absentOutputs"
    for name, value in outputs.items():
        kind, secret, _ = CONTRACT[name]
        assert isinstance(value, Secret) is secret, f"{name}: secrecy changed"
        plain = value.value if isinstance(value, Secret) else value
        assert isinstance(plain, kind), f"{name}: type changed"
        if name in SHAPES:
            assert re.fullmatch(SHAPES[name], plain), (name, plain if not secret else "<secret>")
    if placement == HOST:
        assert ipaddress.ip_address(outputs["hostPublicIp"]).version == 4
    if placement == CLUSTER:
        # TLS-only on the cluster: ElastiCache encrypts in transit; RDS forces TLS.
        assert outputs["redisUrl"].value.startswith("rediss://")
        assert outputs["databaseUrl"].value.endswith("?sslmode=require")


def test_program_and_contract_name_the_same_outputs():
    from composition.outputs import CONTRACT as PROGRAM_CONTRACT

    assert set(PROGRAM_CONTRACT) == set(CONTRACT)


def test_readme_documents_every_output_with_its_type():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## Stack outputs"):]
    for name, (kind, secret, where) in CONTRACT.items():
        row = (f"| `{name}` | {kind.__name__}{' (secret)' if secret else ''} | "
               + " | ".join("yes" if p in where else "no" for p in (LOCAL, HOST, CLUSTER)) + " |")
        assert row in section, row
    assert "StackReference" in section


def test_the_version_follows_semver_and_the_changelog_has_it():
    from composition.outputs import CONTRACT_VERSION
    from composition.outputs import DEPRECATED as PROGRAM_DEPRECATED

    assert CONTRACT_VERSION == VERSION and re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## Outputs contract {VERSION}" in changelog
    # A deprecated output goes away only in a later major, and is in the contract until then.
    for name, (use, removed) in PROGRAM_DEPRECATED.items():
        assert int(removed.split(".")[0]) > int(VERSION.split(".")[0]) and name in CONTRACT
        assert f"`{name}`" in changelog and use
