"""Offline plan: run the real program for a stack under the SDK's mock runtime and print it.

    python -m tools.plan --stack production [--format table|json|mermaid] [--write-files DIR]

No Pulumi CLI, provider plugin, cloud account or Docker engine is needed. Provider answers are
canned (see offline/canned.py). Secrets print as "[secret]". Exit status: 0 on success, 1 when the
program fails (bad config, an exception) or registers a duplicate name, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from configs import edge_release, file_bundle
from offline import harness
from offline.harness import MASK, Plan, Secret, masked, unwrap

# The edge's release command (components/edge_proxy.py): `<component>-release`.
RELEASE_SUFFIX = "-release"
# The config writer's script says which file it was rendered from.
WRITE_FILES_MARK = "configs/docker_scripts/write-files.sh"


def plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "stack": plan.stack,
        "project": plan.project,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "provider": r.provider,
                "dependsOn": sorted(r.all_dependencies),
                "protect": r.protect,
                "retainOnDelete": r.retain_on_delete,
                "deleteBeforeReplace": r.delete_before_replace,
                "inputs": masked(r.inputs),
            }
            for r in plan.resources
        ],
        "outputs": masked(plan.outputs),
    }


def plan_table(plan: Plan) -> str:
    children: dict[str, list[harness.Registration]] = defaultdict(list)
    urns = {r.urn for r in plan.resources}
    for r in plan.resources:
        children[r.parent if r.parent in urns else ""].append(r)
    lines = [f"stack {plan.stack} of {plan.project}: {len(plan.resources)} resources"]

    def walk(parent: str, depth: int) -> None:
        for r in sorted(children[parent], key=lambda x: (x.custom, x.type, x.name)):
            flags = [f for f, on in (("protect", r.protect), ("retain", r.retain_on_delete),
                                     ("delete-first", r.delete_before_replace)) if on]
            flag_text = f"  [{', '.join(flags)}]" if flags else ""
            lines.append(f"{'  ' * depth}{'+' if r.custom else '#'} {r.name}  ({r.type}){flag_text}")
            walk(r.urn, depth + 1)

    walk("", 1)
    lines.append("outputs:")
    for key, value in sorted(masked(plan.outputs).items()):
        lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines)


def plan_mermaid(plan: Plan) -> str:
    """Components and the dependencies between them (a child's dependency counts for its
    component)."""
    index = plan.by_urn()
    components = [r for r in plan.resources if not r.custom]

    def component_of(urn: str) -> str | None:
        reg = index.get(urn)
        while reg is not None and reg.custom:
            reg = index.get(reg.parent)
        return reg.urn if reg is not None else None

    def node(urn: str) -> str:
        return "n" + str(list(index).index(urn))

    lines = ["flowchart LR"]
    for comp in components:
        lines.append(f'  {node(comp.urn)}["{comp.name}<br/>{comp.type.split(":")[-1]}"]')
    edges = set()
    for r in plan.resources:
        src = component_of(r.urn)
        for dep in r.all_dependencies | ({r.provider_urn} if r.provider_urn else set()):
            dst = component_of(dep)
            if src and dst and src != dst:
                edges.add((src, dst))
    for src, dst in sorted(edges):
        lines.append(f"  {node(src)} --> {node(dst)}")
    return "\n".join(lines)


class ConfigWriter(NamedTuple):
    directory: str  # where its service mounts the volume
    stdin: Any  # the bundle written into it, secret or not
    command: harness.Registration


def config_writers(plan: Plan) -> dict[str, ConfigWriter]:
    """Every config volume the program fills (components/config_volumes.py), by volume name."""
    writers = {}
    for r in plan.resources:
        if r.type.startswith("command:") and WRITE_FILES_MARK in str(unwrap(r.inputs.get("create") or "")):
            bound = file_bundle.bound_settings(unwrap(r.inputs["create"]))
            writers[bound["SOS_VOLUME"]] = ConfigWriter(bound["SOS_DIR"], r.inputs.get("stdin"), r)
    return writers


def container_files(plan: Plan, container: harness.Registration) -> dict[str, tuple[file_bundle.BundleFile, bool]]:
    """The files a container finds in its config volumes: absolute path -> (file, was secret)."""
    writers = config_writers(plan)
    files = {}
    for mount in container.inputs.get("mounts") or []:
        source = unwrap(mount.get("source"))
        if source in writers:
            directory, stdin, _ = writers[source]
            for path, f in file_bundle.unbundle(unwrap(stdin)).items():
                files[f"{directory}/{path}"] = (f, isinstance(stdin, Secret))
    return files


def machine_files(plan: Plan) -> dict[str, tuple[str, bool]]:
    """Every file the program hands to a machine: relative path -> (text, was secret)."""
    files: dict[str, tuple[str, bool]] = {}
    for r in plan.resources:
        if r.type == "docker:index/container:Container":
            for path, (f, secret) in container_files(plan, r).items():
                files[f"{r.name}/{path.lstrip('/')}"] = (f.content, secret)
        elif r.type.startswith("command:") and r.name.endswith(RELEASE_SUFFIX) and r.inputs.get("stdin"):
            # An edge release: its files as nginx reads them from the current release.
            raw = r.inputs["stdin"]
            for path, file in edge_release.unbundle(unwrap(raw)).items():
                files[f"{r.name}/{path}"] = (file.content, path == edge_release.KEY_FILE)
        elif r.type == "aws:ec2/instance:Instance" and r.inputs.get("userData") is not None:
            data = r.inputs["userData"]
            files[f"{r.name}/user-data"] = (unwrap(data), isinstance(data, Secret))
    return files


def write_files(plan: Plan, out_dir: Path) -> list[Path]:
    written = []
    for rel, (text, secret) in sorted(machine_files(plan).items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        # Known secret values are masked in every file, secret or not (defence in depth); a
        # secret file in which none is recognisable (an escaped or hashed form) is masked whole.
        text = harness.mask_text(text, plan.secret_values)
        if secret and MASK not in text:
            text = MASK + "\n"
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--format", choices=("table", "json", "mermaid"), default="table")
    parser.add_argument("--write-files", metavar="DIR", type=Path)
    parser.add_argument("--config", metavar="KEY=VALUE", action="append", default=[],
                        help="override a config value for this plan only (value parsed as YAML)")
    parser.add_argument("--program-dir", type=Path, default=harness.ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks")
    args = parser.parse_args(argv)

    overrides: dict[str, Any] = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--config takes KEY=VALUE, got {item!r}")
        try:
            overrides[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at column {mark.column + 1}" if mark is not None else ""
            parser.error(f"--config {key}: not YAML{where} ({getattr(exc, 'problem', None) or exc}): {value!r}")

    try:
        plan = harness.run(args.stack, overrides=overrides, program_dir=args.program_dir)
    except harness.StackNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseException as exc:
        if args.debug:
            traceback.print_exc()
        message = str(exc) or type(exc).__name__
        print(f"error: stack {args.stack}: {message}", file=sys.stderr)
        return 1

    if args.format == "json":
        print(json.dumps(plan_json(plan), indent=2))
    elif args.format == "mermaid":
        print(plan_mermaid(plan))
    else:
        print(plan_table(plan))
    if args.write_files:
        for path in write_files(plan, args.write_files):
            print(f"wrote {path}", file=sys.stderr)
    if plan.duplicates:
        for urn in plan.duplicates:
            print(f"error: duplicate resource (the engine rejects it): {urn}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        status = 0
    sys.stderr.flush()
    # The SDK leaves its event loop and gRPC threads for interpreter teardown, which then
    # prints "Exception ignored" noise at random; the work is done, so leave without it.
    os._exit(status)

