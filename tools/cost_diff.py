"""The monthly cost change of a change, per stack and placement, for the pull-request comment.

    python -m tools.cost_diff --base origin/main            # the working tree against main
    python -m tools.cost_diff --base main --head HEAD

Both sides are priced offline (no AWS account): each tree's plans, each priced by that tree's own
tools/costs.py, so a change to the price list shows as a change too. Prints Markdown.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tools.plan_compare import ROOT, json_of, new_dir, tree_at

# Run inside a tree: {"<stack>, <placement>": {item: USD per month}} as JSON.
PRICE = r"""
import json, sys
sys.path.insert(0, ".")
from tools import costs
json.dump({name: {line.item: line.monthly for line in costs.estimate(plan)}
           for name, plan in costs.plans().items()}, sys.stdout)
"""
# Marks the comment, so that each push edits the one comment instead of adding another.
MARKER = "<!-- storiesofsoftware: cost -->"

Priced = dict[str, dict[str, float]]


def priced(tree: Path) -> Priced:
    return json_of(tree, PRICE)


def _usd(value: float, signed: bool = False) -> str:
    text = f"{abs(value):,.2f}"
    if not signed:
        return text
    return "±0.00" if round(value, 2) == 0 else ("+" if value > 0 else "−") + text


def report(base: Priced, head: Priced) -> str:
    """A table of totals per stack and placement, then each priced item that moved."""
    lines = [MARKER, "### Monthly cost at rest (offline, us-east-1 on-demand; tools/costs.py)", "",
             "| stack, placement | base USD | head USD | change |", "|---|---:|---:|---:|"]
    moved: list[str] = []
    for name in [*head, *(n for n in base if n not in head)]:
        before, after = base.get(name, {}), head.get(name, {})
        old, new = sum(before.values()), sum(after.values())
        lines.append(f"| {name} | {_usd(old)} | {_usd(new)} | {_usd(new - old, signed=True)} |")
        for item in sorted(set(before) | set(after)):
            delta = after.get(item, 0.0) - before.get(item, 0.0)
            if round(delta, 2) != 0:
                moved.append(f"| {name} | {item} | {_usd(delta, signed=True)} |")
    if moved:
        lines += ["", "| stack, placement | item | change |", "|---|---|---:|", *moved]
    else:
        lines += ["", "No priced item changes."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cost_diff", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare against")
    parser.add_argument("--head", help="a revision; default: the working tree")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        base = priced(tree_at(args.base, new_dir(Path(scratch) / "base")))
        head = priced(ROOT if args.head is None else tree_at(args.head, new_dir(Path(scratch) / "head")))
    sys.stdout.write(report(base, head))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
