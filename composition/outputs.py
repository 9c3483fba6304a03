"""The stack outputs every placement exports: a contract other teams read through StackReference
(docs/architecture.md, tests/test_outputs_contract.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi

# The contract's version (semver, CHANGELOG.md): a major removes, renames or changes the meaning
# or type of an output; a minor adds or deprecates one; a patch changes nothing a consumer reads.
CONTRACT_VERSION = "1.1.0"
# Every output some placement exports. A placement names those it has not in `absentOutputs`,
# so a consumer can tell "not here" from "renamed".
CONTRACT = ("siteUrl", "apiUrl", "n8nUrl", "grafanaUrl", "hostPublicIp", "contentBucket", "imagesBucket",
            "backupBucket", "s3Endpoint", "s3Region", "databaseUrl", "redisUrl", "databaseEndpoint",
            "cloudflareZoneId", "loadBalancerName", "clusterName")
# Outputs on their way out, exported for at least one more minor: name -> (what to use instead,
# the version that removes it). Each stack lists its own in `deprecatedOutputs`.
DEPRECATED = {
    # The API's own role and password, and on a Docker placement an address only the host's
    # containers reach: no other team can use it from where it runs.
    "databaseUrl": ("databaseEndpoint, with a role of your own (docs/runbook.md)", "2.0.0"),
    "redisUrl": ("apiUrl: the cache is the platform's own", "2.0.0"),
}


@dataclass
class Contract:
    site_url: str
    api_url: str
    n8n_url: str
    # None where Grafana does not run (the cluster placement alarms through CloudWatch).
    grafana_url: str | None
    buckets: Mapping[str, pulumi.Input[str]]
    s3_endpoint: pulumi.Input[str]
    s3_region: pulumi.Input[str]
    database_url: pulumi.Input[str]
    redis_url: pulumi.Input[str]
    # The placement's own outputs (hostPublicIp, loadBalancerName, ...).
    extra: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def export_contract(contract: Contract) -> None:
    values: dict[str, pulumi.Input[str] | None] = {
        "siteUrl": contract.site_url,
        "apiUrl": contract.api_url,
        "n8nUrl": contract.n8n_url,
        "grafanaUrl": contract.grafana_url,
        "contentBucket": contract.buckets["content"],
        "imagesBucket": contract.buckets["images"],
        "backupBucket": contract.buckets["backups"],
        "s3Endpoint": contract.s3_endpoint,
        "s3Region": contract.s3_region,
        "databaseUrl": contract.database_url,
        "redisUrl": contract.redis_url,
        **contract.extra,
    }
    unknown = set(values) - set(CONTRACT)
    if unknown:
        raise ValueError(f"outputs {sorted(unknown)} are not in the contract (composition/outputs.py)")
    for name, value in values.items():
        if value is not None:
            pulumi.export(name, value)
    pulumi.export("absentOutputs", [name for name in CONTRACT if values.get(name) is None])
    pulumi.export("contractVersion", CONTRACT_VERSION)
    pulumi.export("deprecatedOutputs", {name: {"use": use, "removedIn": removed}
                                        for name, (use, removed) in DEPRECATED.items()
                                        if values.get(name) is not None})
