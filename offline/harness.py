"""Run the real program under the Pulumi SDK's mock runtime and record what the engine would see.

The SDK's `MockMonitor` keeps only (urn, id, state). The engine sees more, and the mocks do less
than the engine, so this harness:

* records every registration request in full: type, name, parent, provider, dependencies,
  protect, retain-on-delete, delete-before-replace and the inputs *with their secret markers*;
* marks outputs secret the way the engine does: the provider-declared `additionalSecretOutputs`
  (a RandomPassword's `result`) and every output whose input was secret;
* reports duplicate URNs, which the mock lets through and the engine rejects;
* starts every run with a fresh root stack, so runs for several stacks share one process.

It is used by `python -m tools.plan` and by the tests, so both see the same graph.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime import mocks as sdk_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_in_stack

import sdk_internals as sdk
from offline.canned import CannedMocks
from offline.values import (
    MASK,
    UNKNOWN,
    UNKNOWN_SIG,
    ResourceRef,
    Secret,
    contains_secret,
    decode,
    decode_struct,
    iter_plain_strings,
    mask_text,
    masked,
    unwrap,
)
from policy.ordering import Graph, Node
from settings.types import stack_kind

# Tests and tools read plans' values through the harness (offline/values.py).
__all__ = [
    "ROOT",
    "Registration",
    "Plan",
    "RecordingMonitor",
    "StackNotFoundError",
    "project_name",
    "stack_names",
    "stack_config",
    "run",
    "MASK",
    "UNKNOWN",
    "UNKNOWN_SIG",
    "ResourceRef",
    "Secret",
    "contains_secret",
    "decode",
    "decode_struct",
    "iter_plain_strings",
    "mask_text",
    "masked",
    "unwrap",
]

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    parent: str
    provider: str
    depends_on: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    # Whether the program set it at all: unset, the provider decides (pulumi-docker replaces
    # containers delete-first); set, either value overrides the provider.
    delete_before_replace_defined: bool
    custom: bool
    ignore_changes: list[str]
    replace_on_changes: list[str]
    additional_secret_outputs: list[str]
    inputs: dict[str, Any]
    # The `replacement_trigger` option: the engine replaces the resource when it changes.
    replacement_trigger: Any = None
    # The `custom_timeouts` option, as the engine gets it ("create", "update", "delete"; unset: "").
    custom_timeouts: dict[str, str] = field(default_factory=dict)

    @property
    def provider_urn(self) -> str:
        return self.provider.rsplit("::", 1)[0] if self.provider else ""

    @property
    def all_dependencies(self) -> set[str]:
        deps = set(self.depends_on)
        for urns in self.property_dependencies.values():
            deps.update(urns)
        return deps


@dataclass
class Plan:
    stack: str
    project: str
    resources: list[Registration]
    outputs: dict[str, Any]
    duplicates: list[str]
    secret_values: set[str] = field(default_factory=set)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # What each resource would hold after `up` in this plan: URN -> (id, outputs), from the mocks.
    states: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # (type, name, arguments given a value) of each custom resource as the program constructed it.
    passed: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)

    def lost_inputs(self) -> list[tuple[str, str, list[str]]]:
        """Arguments the program gave a resource that its registration lacks. The SDK leaves an
        input out when the Output behind it resolves to nothing, which under mocks happens when
        they answer an output the provider would compute (an autonamed `name`): every check
        would then judge a different resource from the one `pulumi up` creates."""
        def flat(key: str) -> str:
            return key.replace("_", "").lower()
        registered = {(r.type, r.name): {flat(k) for k in r.inputs} for r in self.resources}
        lost = []
        for type_, name, keys in self.passed:
            got = registered.get((type_, name))
            if got is None:
                lost.append((type_, name, ["(not registered)"]))
            elif missing := sorted(k for k in keys if flat(k) not in got):
                lost.append((type_, name, missing))
        return lost

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_]

    def by_urn(self) -> dict[str, Registration]:
        return {r.urn: r for r in self.resources}

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {names}")
        return found[0]

    def graph(self) -> Graph:
        """The plan as the create-order rules see a graph (policy/ordering.py)."""
        return Graph(Node(r.urn, r.type, r.name, r.parent, list(r.all_dependencies), r.property_dependencies)
                     for r in self.resources)

    def depends_transitively(self, urn: str, target: str) -> bool:
        """True if `urn` waits for `target` through a chain of dependencies (a dependency on a
        component counts as one on each of its children)."""
        return self.graph().waits_for(urn, target)


# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# The recording monitor
# --------------------------------------------------------------------------------------------


def _wrap_secret(obj: struct_pb2.Struct, key: str) -> None:
    inner = struct_pb2.Value()
    inner.CopyFrom(obj.fields[key])
    wrapper = struct_pb2.Struct()
    wrapper.fields[sdk.SIG_KEY].string_value = sdk.SECRET_SIG
    wrapper.fields["value"].CopyFrom(inner)
    obj.fields[key].struct_value.CopyFrom(wrapper)


def _trigger(request: Any) -> Any:
    if not request.HasField("replacement_trigger"):
        return None

    return json_format.MessageToDict(request.replacement_trigger)


class RecordingMonitor(sdk_mocks.MockMonitor):
    def __init__(self, mocks: sdk_mocks.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.duplicates: list[str] = []
        self.outputs_by_urn: dict[str, dict[str, Any]] = {}
        self.secret_values: set[str] = set()
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def Invoke(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        sdk.ensure_event_loop()
        self.invokes.append((request.tok, decode_struct(request.args)))
        return super().Invoke(request)

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type == "pulumi:pulumi:Stack":
            return resource_pb2.RegisterResourceResponse(urn=urn)
        sdk.ensure_event_loop()
        if any(r.urn == urn for r in self.registrations):
            self.duplicates.append(urn)
        decoded = decode_struct(request.object)
        registration = Registration(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            provider=request.provider,
            depends_on=list(request.dependencies),
            property_dependencies={
                k: list(v.urns) for k, v in request.propertyDependencies.items()
            },
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            delete_before_replace=bool(request.deleteBeforeReplace),
            delete_before_replace_defined=bool(request.deleteBeforeReplaceDefined),
            custom=bool(request.custom),
            ignore_changes=list(request.ignoreChanges),
            replace_on_changes=list(request.replaceOnChanges),
            additional_secret_outputs=list(request.additionalSecretOutputs),
            inputs=decoded,
            replacement_trigger=_trigger(request),
            custom_timeouts={k: getattr(request.customTimeouts, k) for k in ("create", "update", "delete")
                             if request.HasField("customTimeouts") and getattr(request.customTimeouts, k)},
        )
        self.registrations.append(registration)
        args = sdk_mocks.MockResourceArgs(
            typ=request.type,
            name=request.name,
            inputs=rpc.deserialize_properties(request.object),
            provider=request.provider,
            resource_id=request.importId,
            custom=request.custom or False,
        )
        # Mocks that act on a real engine (testsupport/live.py) see the whole registration: the
        # options that decide how a change is made (replace, delete first) are not in `args`.
        apply = getattr(self.mocks, "apply", None)
        id_, state = apply(registration, args) if apply else self.mocks.new_resource(args)
        obj = sdk.serialize(state)
        secret_keys = set(request.additionalSecretOutputs)
        secret_keys |= {k for k, v in decoded.items() if contains_secret(v)}
        for key in secret_keys:
            if key in obj.fields:
                _wrap_secret(obj, key)
                value = state.get(key)
                if isinstance(value, str) and key in request.additionalSecretOutputs:
                    self.secret_values.add(value)
        self.resources[urn] = sdk_mocks.MockMonitor.ResourceRegistration(urn, id_, state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=id_ or "", object=obj)

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        self.outputs_by_urn[request.urn] = decode_struct(request.outputs)
        return super().RegisterResourceOutputs(request)


# --------------------------------------------------------------------------------------------
# Stack configuration, as the CLI would pass it
# --------------------------------------------------------------------------------------------


class StackNotFoundError(Exception):
    pass


def project_name(program_dir: Path = ROOT) -> str:
    return yaml.safe_load((program_dir / "Pulumi.yaml").read_text())["name"]


def stack_names(program_dir: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in program_dir.glob("Pulumi.*.yaml"))


def _config_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value)


def stack_config(stack: str, program_dir: Path = ROOT,
                 overrides: dict[str, Any] | None = None) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as the engine passes it: strings (JSON for objects), with
    encrypted values replaced by placeholders and listed as secret keys."""
    path = program_dir / f"Pulumi.{stack}.yaml"
    if not path.exists() and stack_kind(stack) == "dev" and stack != "dev":
        # A developer's dev-<name> before its first `pulumi config set`: no file, dev's defaults.
        path = None
    elif not path.exists():
        raise StackNotFoundError(
            f"no stack {stack!r}: {path.name} does not exist "
            f"(stacks here: {', '.join(stack_names(program_dir))})"
        )
    project = project_name(program_dir)
    doc = (yaml.safe_load(path.read_text()) if path is not None else None) or {}
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in (doc.get("config") or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[full] = f"placeholder-for-{full.split(':', 1)[1]}-from-encrypted-config"
            secret_keys.append(full)
        else:
            config[full] = _config_text(value)
    for key, value in (overrides or {}).items():
        full = key if ":" in key else f"{project}:{key}"
        config.pop(full, None)
        if full in secret_keys:
            secret_keys.remove(full)
        if value is None:
            continue
        if isinstance(value, Secret):
            config[full] = _config_text(value.value)
            secret_keys.append(full)
        else:
            config[full] = _config_text(value)
    return config, secret_keys


@contextmanager
def _arguments_recorded(passed: list[tuple[str, str, frozenset[str]]]) -> Iterator[None]:
    """Every custom resource's arguments as the generated SDK hands them over (its `__props__`,
    before any Output is resolved or left out)."""
    original = pulumi.CustomResource.__init__

    def recording(self: pulumi.CustomResource, t: str, name: str, props: Any = None, *args: Any, **kwargs: Any) -> None:
        values = props if isinstance(props, dict) else vars(props) if props is not None else {}
        if not t.startswith("pulumi:providers:"):
            passed.append((t, name, frozenset(k for k, v in values.items() if v is not None)))
        original(self, t, name, props, *args, **kwargs)

    pulumi.CustomResource.__init__ = recording  # type: ignore[method-assign]
    try:
        yield
    finally:
        pulumi.CustomResource.__init__ = original  # type: ignore[method-assign]


@contextmanager
def _program_context(program_dir: Path) -> Iterator[None]:
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(program_dir)
    sys.path.insert(0, str(program_dir))
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


def run(stack: str, overrides: dict[str, Any] | None = None, program_dir: Path = ROOT,
        preview: bool = False, mocks: CannedMocks | None = None) -> Plan:
    """Run `__main__.py` of `program_dir` for `stack` and return everything it registered.

    Raises whatever the program raises (a `settings.ConfigError` for bad config), after the
    recorded registrations have been attached to it as `exc.plan`.
    """
    program_dir = Path(program_dir)
    project = project_name(program_dir)
    config, secret_keys = stack_config(stack, program_dir, overrides)

    if (outside := sdk.check_version()) is not None:
        warnings.warn(outside, stacklevel=2)
    mocks = mocks or CannedMocks(stack=stack)
    monitor = RecordingMonitor(mocks)
    # A fresh root stack per run: set_mocks only creates one when none exists.
    sdk.reset_root_stack()
    sdk.set_all_config(config, secret_keys)
    sdk_mocks.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    sdk.clear_run_state()

    main = program_dir / "__main__.py"
    error: BaseException | None = None
    passed: list[tuple[str, str, frozenset[str]]] = []
    with _program_context(program_dir), _arguments_recorded(passed):
        try:
            sdk.sync_await(run_in_stack(lambda: runpy.run_path(str(main), run_name="__main__")))
        except BaseException as exc:
            error = exc

    stack_urn = f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"
    outputs = monitor.outputs_by_urn.get(stack_urn, {})
    secret_values = set(monitor.secret_values)
    secret_values |= {config[k] for k in secret_keys if k in config}
    plan = Plan(stack=stack, project=project, resources=list(monitor.registrations), outputs=outputs,
                duplicates=monitor.duplicates, secret_values=secret_values,
                invokes=monitor.invokes, passed=passed,
                states={urn: (r.id, dict(r.state)) for urn, r in monitor.resources.items()})
    if error is not None:
        error.plan = plan  # type: ignore[attr-defined]
        raise error
    return plan

