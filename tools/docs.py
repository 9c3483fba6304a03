"""Regenerate the generated sections of the README, docs/security.md, docs/configuration.md and
docs/architecture.md from the offline plans.

    python -m tools.docs            # rewrite what is stale
    python -m tools.docs --check    # exit 1, naming each stale page, and write nothing (CI)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import settings
from offline.harness import Plan
from tools import controls, costs

README = Path(__file__).resolve().parent.parent / "README.md"
SECURITY = README.parent / "docs" / "security.md"
CONFIGURATION = README.parent / "docs" / "configuration.md"
ARCHITECTURE = README.parent / "docs" / "architecture.md"
COSTS_START, COSTS_END = "<!-- costs:start -->", "<!-- costs:end -->"
COSTS_SUMMARY_START, COSTS_SUMMARY_END = "<!-- costs-summary:start -->", "<!-- costs-summary:end -->"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"
CONTROLS_START, CONTROLS_END = "<!-- controls-table:start -->", "<!-- controls-table:end -->"
SUMMARY_START, SUMMARY_END = "<!-- controls-summary:start -->", "<!-- controls-summary:end -->"


def _replace(text: str, start: str, end: str, body: str) -> str:
    block = f"{start}\n{body}\n{end}"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


def render(readme: str, plans: dict[str, Plan], cost_plans: dict[str, Plan] | None = None) -> str:
    """The README with its generated tables: the FSBP controls' status in the staging and
    production plans, and what each stack costs per month in either placement."""
    text = _replace(readme, SUMMARY_START, SUMMARY_END, controls.summary(plans))
    return _replace(text, COSTS_SUMMARY_START, COSTS_SUMMARY_END, costs.summary(cost_plans or costs.plans()))


def render_architecture(page: str, cost_plans: dict[str, Plan] | None = None) -> str:
    """docs/architecture.md with the monthly cost of each stack and placement, line by line."""
    return _replace(page, COSTS_START, COSTS_END, costs.table(cost_plans or costs.plans()))


def render_configuration(page: str) -> str:
    """docs/configuration.md with every key of the stack settings."""
    return _replace(page, START, END, settings.config_table())


def render_security(page: str, plans: dict[str, Plan]) -> str:
    """docs/security.md with the full FSBP table: status, and how each is met or why not."""
    return _replace(page, CONTROLS_START, CONTROLS_END, controls.table(plans))


def main(argv: list[str] | None = None, plans: dict[str, Plan] | None = None,
         cost_plans: dict[str, Plan] | None = None) -> int:
    """`plans`, `cost_plans`: already planned (a test's), instead of planning again."""
    parser = argparse.ArgumentParser(prog="python -m tools.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is stale")
    args = parser.parse_args(argv)
    if plans is None or cost_plans is None:
        print("planning staging and production on both placements (about 10 s) ...", file=sys.stderr)
    plans = plans or controls.plans()
    cost_plans = cost_plans or costs.plans()
    stale = []
    for path, render_page in ((README, lambda t: render(t, plans, cost_plans)),
                              (SECURITY, lambda t: render_security(t, plans)),
                              (CONFIGURATION, render_configuration),
                              (ARCHITECTURE, lambda t: render_architecture(t, cost_plans))):
        text = path.read_text()
        new = render_page(text)
        name = path.relative_to(README.parent)
        if new == text:
            print(f"{name}: up to date", file=sys.stderr)
        elif args.check:
            stale.append(name)
            print(f"{name}: stale (python -m tools.docs rewrites it)", file=sys.stderr)
        else:
            path.write_text(new)
            print(f"{name}: updated", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
