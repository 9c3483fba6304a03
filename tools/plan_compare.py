"""Compare the offline plans of two trees, resource by resource: what a refactoring must leave
alone, or what a change really changes, for every stack and placement.

    python -m tools.plan_compare --base main            # the working tree against main
    python -m tools.plan_compare --base HEAD~3 --head HEAD

Each side is the program of that tree run under the mock engine (offline/harness.py; older trees
had it at tools/harness.py), in a copy made with `git archive`. Each resource is compared by its
URN: inputs (secrets masked), dependencies and options. Exits 1 when the plans differ and
`--identical` was asked for.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Every stack, and staging and production on the cluster too.
PLANS = (("dev", {}), ("staging", {}), ("production", {}),
         ("staging", {"placement": "cluster"}), ("production", {"placement": "cluster"}))

# Run inside a tree; prints {plan: {urn: facts}} as JSON. Plain Python, so any tree's harness runs.
DUMP = r"""
import json, sys
sys.path.insert(0, ".")
try:
    from offline import harness
except ImportError:
    from tools import harness
out = {}
for stack, overrides in json.loads(sys.argv[1]):
    plan = harness.run(stack, overrides=overrides)
    name = stack + ("-" + overrides["placement"] if overrides else "")
    facts = {}
    for r in plan.resources:
        facts[r.urn] = {
            "inputs": harness.masked(r.inputs), "dependencies": sorted(r.all_dependencies),
            "parent": r.parent, "provider": r.provider_urn, "protect": r.protect,
            "retain_on_delete": r.retain_on_delete, "ignore_changes": sorted(r.ignore_changes),
            "delete_before_replace": [r.delete_before_replace, r.delete_before_replace_defined],
            "replace_on_changes": sorted(r.replace_on_changes),
            "additional_secret_outputs": sorted(r.additional_secret_outputs),
            "replacement_trigger": harness.masked(getattr(r, "replacement_trigger", None)),
            "custom_timeouts": getattr(r, "custom_timeouts", {})}
    facts["<outputs>"] = {"inputs": harness.masked(plan.outputs)}
    out[name] = facts
json.dump(out, sys.stdout, sort_keys=True, default=str)
"""


def json_of(tree: Path, script: str, *args: str) -> Any:
    """What `script` prints as JSON, run with this interpreter inside `tree` (its own modules
    first on the path, whatever this tree's are)."""
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=tree, capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise SystemExit(f"the plans of {tree} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout)


def plans_of(tree: Path) -> dict[str, dict[str, Any]]:
    """Every plan of the program in `tree`."""
    return json_of(tree, DUMP, json.dumps(PLANS))


def tree_at(rev: str, into: Path) -> Path:
    """The files of `rev`, as git has them (untracked files left out)."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def differences(base: dict[str, dict[str, Any]], head: dict[str, dict[str, Any]]) -> list[str]:
    """One line per added, removed or changed resource (and per changed fact of it)."""
    lines: list[str] = []
    for name in sorted(set(base) | set(head)):
        old, new = base.get(name, {}), head.get(name, {})
        lines += [f"{name}: removed {urn}" for urn in sorted(set(old) - set(new))]
        lines += [f"{name}: added {urn}" for urn in sorted(set(new) - set(old))]
        for urn in sorted(set(old) & set(new)):
            for fact in sorted(set(old[urn]) | set(new[urn])):
                before, after = old[urn].get(fact), new[urn].get(fact)
                if before == after:
                    continue
                if fact == "inputs" and isinstance(before, dict) and isinstance(after, dict):
                    keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
                    lines.append(f"{name}: changed {urn} inputs {', '.join(keys)}")
                else:
                    lines.append(f"{name}: changed {urn} {fact}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan_compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", help="a revision; default: the working tree")
    parser.add_argument("--identical", action="store_true", help="exit 1 when anything differs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        base = plans_of(tree_at(args.base, new_dir(Path(scratch) / "base")))
        head = plans_of(ROOT if args.head is None else tree_at(args.head, new_dir(Path(scratch) / "head")))
    found = differences(base, head)
    for name in sorted(head):
        print(f"{name}: {len(base.get(name, {})) - 1} -> {len(head[name]) - 1} resources")
    print("\n".join(found) if found else "identical: every resource, input, dependency and option")
    return 1 if found and args.identical else 0


def new_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
