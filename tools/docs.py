"""Regenerate the generated sections of the README, docs/security.md and docs/configuration.md:
`python -m tools.docs` (tests fail when stale)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import settings
from tools import controls
from tools.harness import Plan

README = Path(__file__).resolve().parent.parent / "README.md"
SECURITY = README.parent / "docs" / "security.md"
CONFIGURATION = README.parent / "docs" / "configuration.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"
CONTROLS_START, CONTROLS_END = "<!-- controls-table:start -->", "<!-- controls-table:end -->"
SUMMARY_START, SUMMARY_END = "<!-- controls-summary:start -->", "<!-- controls-summary:end -->"


def _replace(text: str, start: str, end: str, body: str) -> str:
    block = f"{start}\n{body}\n{end}"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


def render(readme: str, plans: dict[str, Plan]) -> str:
    """The README with its generated table: the FSBP controls' status in the staging and
    production plans."""
    return _replace(readme, SUMMARY_START, SUMMARY_END, controls.summary(plans))


def render_configuration(page: str) -> str:
    """docs/configuration.md with every key of the stack settings."""
    return _replace(page, START, END, settings.config_table())


def render_security(page: str, plans: dict[str, Plan]) -> str:
    """docs/security.md with the full FSBP table: status, and how each is met or why not."""
    return _replace(page, CONTROLS_START, CONTROLS_END, controls.table(plans))


def main() -> int:
    plans = controls.plans()
    for path, render_page in ((README, lambda t: render(t, plans)), (SECURITY, lambda t: render_security(t, plans)),
                              (CONFIGURATION, render_configuration)):
        text = path.read_text()
        new = render_page(text)
        if new != text:
            path.write_text(new)
            print(f"{path.name} updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
