"""A stack's planned AWS resources as Terraform configuration for the real AWS provider.

pulumi-aws bridges the Terraform AWS provider, so the provider's own validators and API calls
are the closest thing to the engine this machine has. `translate()` turns the offline plan into
a `main.tf.json`:

- each Pulumi type becomes its Terraform type (`aws:ec2/instance:Instance` -> `aws_instance`);
- inputs are named as the provider's schema names them (camelCase -> snake_case; Pulumi's plural
  of a repeated block, `schedules`, -> the block, `schedule`), map keys (tags) left alone, nested
  blocks in the provider's shape;
- a value that came from another planned resource becomes a Terraform reference
  (`${aws_iam_role.host_dlm_role.arn}`), also inside a JSON policy document;
- the program's explicit `depends_on` between AWS resources becomes Terraform's `depends_on`;
- secrets are the offline plan's generated placeholders (never a real secret: the plan has none);
- properties the provider does not have (those of the newer provider line pulumi-aws 7 bridges)
  are listed in `Translation.dropped`, never silently lost.

`isolated=True` writes every reference as its planned value instead, so no resource depends on
another: `terraform validate` skips what depends on a rejected resource, and an isolated
configuration lets it see every resource's errors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offline.harness import UNKNOWN, Plan, Registration, ResourceRef, Secret

PROVIDER_SOURCE = "registry.terraform.io/hashicorp/aws"
PROVIDER_VERSION = "5.100.0"
# Pulumi types whose Terraform name is not `aws_<module>_<name>` or `aws_<name>`.
TYPE_OVERRIDES: dict[str, str] = {
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
    "aws:s3/bucketObjectv2:BucketObjectv2": "aws_s3_object",
    "aws:rds/eventSubscription:EventSubscription": "aws_db_event_subscription",
    "aws:servicediscovery/privateDnsNamespace:PrivateDnsNamespace": "aws_service_discovery_private_dns_namespace",
    "aws:servicediscovery/service:Service": "aws_service_discovery_service",
}
# Inputs whose Terraform attribute has another name (pulumi-aws renames them).
ATTRIBUTE_RENAMES: dict[str, dict[str, str]] = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": {"name": "alarmName"},
}
# Attributes whose value is the identity of a resource, and so worth a reference.
IDENTITY_ATTRIBUTES = ("id", "arn", "name", "bucket", "allocationId", "publicIp")


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def singular(name: str) -> list[str]:
    out = []
    if name.endswith("ies"):
        out.append(name[:-3] + "y")
    if name.endswith("s"):
        out.append(name[:-1])
    return out


def resource_schemas(schema: dict) -> dict[str, Any]:
    return schema["provider_schemas"][PROVIDER_SOURCE]["resource_schemas"]


def tf_type(token: str, schemas: dict[str, Any]) -> str:
    if token in TYPE_OVERRIDES:
        return TYPE_OVERRIDES[token]
    module, _, kind = token.split(":", 1)[1].partition("/")
    name = snake(kind.split(":")[-1])
    for candidate in (f"aws_{module}_{name}", f"aws_{name}"):
        if candidate in schemas:
            return candidate
    raise KeyError(f"no Terraform type for {token}")


def tf_name(registration: Registration) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", registration.name)


def escape(text: str) -> str:
    """A literal string in Terraform's JSON syntax: `${` and `%{` start templates there."""
    return text.replace("${", "$${").replace("%{", "%%{")


@dataclass
class Translation:
    stack: str
    config: dict[str, Any]
    addresses: dict[str, str]                     # URN -> Terraform address
    dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (address, path, why)
    # Values whose shape differs between the provider lines, given in 5.100.0's shape.
    reshaped: list[tuple[str, str, str]] = field(default_factory=list)
    # Names the Pulumi engine would generate (autonaming), given here as it would.
    autonamed: list[tuple[str, str, str]] = field(default_factory=list)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "main.tf.json"
        path.write_text(json.dumps(self.config, indent=2, sort_keys=True) + "\n")
        return path


@dataclass
class _Ref:
    address: str
    attribute: str
    value: str


def _references(registrations: dict[str, Registration], registration: Registration, key: str,
                addresses: dict[str, str], states: dict[str, tuple[str, dict]]) -> list[_Ref]:
    """What another planned AWS resource gave this input: its identity values, longest first."""
    refs = []
    for urn in registration.property_dependencies.get(key, []):
        if urn not in addresses or urn not in states:
            continue
        rid, state = states[urn]
        dep = registrations[urn]
        candidates = {"id": rid}
        for attr in IDENTITY_ATTRIBUTES[1:]:
            if isinstance(state.get(attr), str):
                candidates[attr] = state[attr]
        # What the provider computed (in the plan: the mocks' outputs), not echoed inputs.
        for attr, value in state.items():
            if attr not in dep.inputs and isinstance(value, str):
                candidates.setdefault(attr, value)
        for attr, value in candidates.items():
            if isinstance(value, str) and len(value) >= 6:
                refs.append(_Ref(addresses[urn], snake(attr), value))
    return sorted(refs, key=lambda r: (-len(r.value), r.attribute != "id", r.attribute != "arn"))


def _string(value: str, refs: list[_Ref], isolated: bool) -> str:
    if isolated or not refs:
        return escape(value)
    for ref in refs:
        if value == ref.value:
            return f"${{{ref.address}.{ref.attribute}}}"
    parts = [value]
    for ref in refs:
        pieces: list[str] = []
        for part in parts:
            if isinstance(part, _Ref):
                pieces.append(part)  # type: ignore[arg-type]
                continue
            chunks = part.split(ref.value)
            for i, chunk in enumerate(chunks):
                if i:
                    pieces.append(ref)  # type: ignore[arg-type]
                if chunk:
                    pieces.append(chunk)
        parts = pieces
    return "".join(f"${{{p.address}.{p.attribute}}}" if isinstance(p, _Ref) else escape(p) for p in parts)


class _Converter:
    def __init__(self, address: str, refs: list[_Ref], isolated: bool, translation: Translation) -> None:
        self.address = address
        self.refs = refs
        self.isolated = isolated
        self.translation = translation

    def drop(self, path: str, why: str) -> None:
        self.translation.dropped.append((self.address, path, why))

    def value(self, value: Any, type_: Any, path: str) -> Any:
        """`value` in the shape of the provider's attribute type."""
        if isinstance(value, Secret):
            return self.value(value.value, type_, path)
        if isinstance(value, ResourceRef):
            return self.value(value.id, type_, path)
        if value is UNKNOWN or value is None:
            return None
        kind = type_[0] if isinstance(type_, list) else type_
        if kind in ("list", "set"):
            if not isinstance(value, list):
                self.translation.reshaped.append((self.address, path, f"a single value here, a {kind} in 5.100.0"))
                value = [value]
            return [self.value(v, type_[1], f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map":
            return {k: self.value(v, type_[1], f"{path}.{k}") for k, v in value.items()}
        if kind == "object":
            fields = type_[1]
            out = {}
            for k, v in value.items():
                name = snake(k)
                if name not in fields:
                    self.drop(f"{path}.{k}", "not in hashicorp/aws " + PROVIDER_VERSION)
                    continue
                out[name] = self.value(v, fields[name], f"{path}.{k}")
            # Terraform wants every attribute of an object type; absent ones are null.
            return {name: out.get(name) for name in fields}
        if isinstance(value, str):
            return _string(value, self.refs, self.isolated)
        if isinstance(value, (dict, list)):
            # A JSON document the provider takes as a string (a policy).
            return _string(json.dumps(value), self.refs, self.isolated)
        return value

    def block(self, inputs: dict[str, Any], schema: dict[str, Any], path: str) -> dict[str, Any]:
        attributes = schema.get("attributes", {})
        blocks = schema.get("block_types", {})
        out: dict[str, Any] = {}
        for key, value in inputs.items():
            if value is None or value is UNKNOWN:
                continue
            name = snake(key)
            where = f"{path}.{key}" if path else key
            attr_name = name if name in attributes else next((s for s in singular(name) if s in attributes), None)
            if attr_name is not None:
                attr = attributes[attr_name]
                if attr.get("computed") and not attr.get("optional") and not attr.get("required"):
                    self.drop(where, "computed by the provider, not an input")
                    continue
                out[attr_name] = self.value(value, attr["type"], where)
                continue
            block_name = name if name in blocks else next((s for s in singular(name) if s in blocks), None)
            if block_name is None:
                self.drop(where, "not in hashicorp/aws " + PROVIDER_VERSION)
                continue
            nested = blocks[block_name]
            if isinstance(value, list):
                out[block_name] = [self.block(item, nested["block"], f"{where}[{i}]") for i, item in enumerate(value)]
            else:
                out[block_name] = [self.block(value, nested["block"], where)]
        return out


def _autoname(r: Registration, address: str, body: dict[str, Any], schema: dict[str, Any],
              translation: Translation) -> None:
    """Pulumi names a resource `<logical name>-<7 hex>` when the program gives no name (its
    autonaming); Terraform would leave an optional name to AWS or fail on a required one."""
    attributes = schema.get("attributes", {})
    # pulumi-aws autonames these identifiers too (its resources.go: tfbridge.AutoName).
    for field_, prefix in (("name", "name_prefix"), ("bucket", "bucket_prefix"),
                           ("replication_group_id", "replication_group_id_prefix")):
        attr = attributes.get(field_)
        if attr is None or field_ in body or prefix in body or not (attr.get("optional") or attr.get("required")):
            continue
        if attr.get("required") or prefix in attributes:
            value = f"{r.name}-{hashlib.sha256(r.urn.encode()).hexdigest()[:7]}"
            body[field_] = value
            translation.autonamed.append((address, field_, value))


def _instance_primary_interface(converter: _Converter, value: Any) -> dict[str, Any]:
    """pulumi-aws 7 (provider 6.x) attaches a pre-made network interface as the instance's
    primary through `primaryNetworkInterface`; 5.100.0 says the same with a `network_interface`
    block at device index 0."""
    return {"network_interface": [{
        "device_index": 0,
        "network_interface_id": converter.value(value["networkInterfaceId"], "string", "primaryNetworkInterface"),
        "delete_on_termination": False,
        "network_card_index": None,
    }]}


LEGACY_EQUIVALENTS: dict[str, dict[str, Any]] = {
    "aws:ec2/instance:Instance": {"primaryNetworkInterface": _instance_primary_interface},
}


def translate(plan: Plan, schema: dict[str, Any], *, isolated: bool = False) -> Translation:
    schemas = resource_schemas(schema)
    aws = [r for r in plan.resources if r.custom and r.type.startswith("aws:")]
    addresses = {r.urn: f"{tf_type(r.type, schemas)}.{tf_name(r)}" for r in aws}
    translation = Translation(plan.stack, {}, addresses)
    registrations = plan.by_urn()
    resources: dict[str, dict[str, Any]] = {}
    for r in aws:
        address = addresses[r.urn]
        kind, name = address.split(".", 1)
        body: dict[str, Any] = {}
        for key, value in r.inputs.items():
            converter = _Converter(address, _references(registrations, r, key, addresses, plan.states), isolated,
                                   translation)
            renamed = ATTRIBUTE_RENAMES.get(r.type, {}).get(key, key)
            body.update(converter.block({renamed: value}, schemas[kind]["block"], ""))
        _autoname(r, address, body, schemas[kind]["block"], translation)
        for key, legacy in LEGACY_EQUIVALENTS.get(r.type, {}).items():
            if key in r.inputs:
                converter = _Converter(address, _references(registrations, r, key, addresses, plan.states), isolated,
                                       translation)
                translation.dropped = [d for d in translation.dropped if d[:2] != (address, key)]
                translation.reshaped.append((address, key, " ".join((legacy.__doc__ or "").split())))
                body.update(legacy(converter, r.inputs[key]))
        # The program's explicit ordering (a bucket's logging after the policy that admits its
        # delivery), which no property carries.
        ordered = sorted(addresses[u] for u in r.depends_on if u in addresses)
        if ordered and not isolated:
            body["depends_on"] = ordered
        resources.setdefault(kind, {})[name] = body

    provider: dict[str, Any] = {}
    (aws_provider,) = [r for r in plan.resources if r.type == "pulumi:providers:aws"] or [None]
    if aws_provider is not None:
        inputs = aws_provider.inputs
        provider["region"] = inputs.get("region")
        tags = inputs.get("defaultTags")
        if isinstance(tags, str):
            tags = json.loads(tags)
        if tags:
            provider["default_tags"] = [{"tags": tags.get("tags", {})}]
    translation.config = {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": PROVIDER_VERSION}}},
        "provider": {"aws": provider},
        "resource": resources,
    }
    return translation


# --------------------------------------------------------------------------------------------
# The Terraform CLI with the provider from the machine's filesystem mirror
# --------------------------------------------------------------------------------------------

MIRRORS = ("/opt/tf-plugins", "/usr/share/terraform/plugins", str(Path.home() / ".terraform.d" / "plugins"))


def mirror() -> Path | None:
    """A filesystem mirror that holds hashicorp/aws at the pinned version, if this machine has one."""
    for root in MIRRORS:
        path = Path(root) / "registry.terraform.io" / "hashicorp" / "aws" / PROVIDER_VERSION
        if path.exists():
            return Path(root)
    return None


def cli_config(directory: Path, mirror_root: Path | None) -> Path:
    """Terraform's CLI configuration: the mirror for hashicorp/aws when there is one (offline),
    the public registry otherwise."""
    path = directory / "terraform.tfrc"
    if mirror_root is None:
        path.write_text("")
        return path
    path.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror_root}"\n    include = ["{PROVIDER_SOURCE}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{PROVIDER_SOURCE}"]\n  }}\n'
        "}\n")
    return path


def terraform(args: list[str], cwd: Path, tfrc: Path, env: dict[str, str] | None = None,
              timeout: float = 900) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CLI_CONFIG_FILE": str(tfrc), "TF_IN_AUTOMATION": "1",
                "CHECKPOINT_DISABLE": "1", **(env or {})}
    return subprocess.run(["terraform", *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def provider_schema(work: Path, tfrc: Path) -> dict[str, Any]:
    """`terraform providers schema -json` for the pinned provider."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "main.tf.json").write_text(json.dumps({"terraform": {"required_providers": {
        "aws": {"source": "hashicorp/aws", "version": PROVIDER_VERSION}}}}))
    for args in (["init", "-input=false", "-no-color"], ["providers", "schema", "-json"]):
        result = terraform(args, work, tfrc)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    """`python -m tools.terraform --stack production --out DIR [--isolated]`: write the stack's
    AWS resources as main.tf.json and list what the translation reshaped or left out."""
    import argparse
    import tempfile

    from offline import harness

    parser = argparse.ArgumentParser(prog="python -m tools.terraform", description=main.__doc__)
    parser.add_argument("--stack", required=True, choices=["staging", "production"])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--isolated", action="store_true", help="planned values instead of references")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sos-tf-schema-"))
    schema = provider_schema(work, cli_config(work, mirror()))
    translation = translate(harness.run(args.stack), schema, isolated=args.isolated)
    path = translation.write(args.out)
    print(f"{path}: {len(translation.addresses)} resources")
    for title, rows in (("reshaped for 5.100.0", translation.reshaped), ("left out", translation.dropped),
                        ("autonamed as Pulumi would", translation.autonamed)):
        for address, where, why in rows:
            print(f"{title}: {address} {where}: {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
