"""The stack outputs other teams read through StackReference: a contract. Renaming, removing,
retyping an output or letting a secret one go plain fails here, before a consumer breaks."""

from __future__ import annotations

import ipaddress
import re

import pytest

from testsupport.plans import STACKS, plan_for
from testsupport.tools import ROOT
from tools.harness import Secret

# name -> (type, secret, on dev). Written from the delivery issue's list, not from the program.
CONTRACT: dict[str, tuple[type, bool, bool]] = {
    "siteUrl": (str, False, True),
    "apiUrl": (str, False, True),
    "n8nUrl": (str, False, True),
    "grafanaUrl": (str, False, True),
    "hostPublicIp": (str, False, False),
    "contentBucket": (str, False, True),
    "imagesBucket": (str, False, True),
    "backupBucket": (str, False, True),
    "s3Endpoint": (str, False, True),
    "s3Region": (str, False, True),
    "databaseUrl": (str, True, True),
    "redisUrl": (str, True, True),
    "cloudflareZoneId": (str, False, False),
}
SHAPES = {
    "siteUrl": r"https://[a-z0-9.-]+", "apiUrl": r"https://api\.[a-z0-9.-]+", "n8nUrl": r"https://n8n\.[a-z0-9.-]+",
    "grafanaUrl": r"https://grafana\.[a-z0-9.-]+", "s3Endpoint": r"https?://[a-z0-9.:-]+",
    "s3Region": r"[a-z]{2}(-[a-z]+)+-\d", "cloudflareZoneId": r"[0-9a-f]{32}",
    "databaseUrl": r"postgres(ql)?://.+", "redisUrl": r"redis://.+",
}


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_match_the_contract(stack):
    outputs = dict(plan_for(stack).outputs)
    expected = {name for name, (_, _, on_dev) in CONTRACT.items() if stack != "dev" or on_dev}
    absent = set(outputs.pop("absentOutputs", []))
    assert set(outputs) == expected, "an output was added, renamed or removed: update the contract and docs/architecture.md"
    if stack == "dev":
        assert absent == set(CONTRACT) - expected, "dev names every contract output it does not export"
    else:
        assert absent == set()
    for name, value in outputs.items():
        kind, secret, _ = CONTRACT[name]
        assert isinstance(value, Secret) is secret, f"{name}: secrecy changed"
        plain = value.value if isinstance(value, Secret) else value
        assert isinstance(plain, kind), f"{name}: type changed"
        if name in SHAPES:
            assert re.fullmatch(SHAPES[name], plain), (name, plain if not secret else "<secret>")
    if stack != "dev":
        assert ipaddress.ip_address(outputs["hostPublicIp"]).version == 4


def test_readme_documents_every_output_with_its_type():
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text[text.index("## Stack outputs"):]
    for name, (kind, secret, on_dev) in CONTRACT.items():
        row = f"| `{name}` | {kind.__name__}{' (secret)' if secret else ''} | {'yes' if on_dev else 'no'} |"
        assert row in section, row
    assert "StackReference" in section
