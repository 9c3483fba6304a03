"""Regenerate the README's generated sections: `python -m tools.docs` (tests fail when stale)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import settings
from tools import controls
from tools.harness import Plan

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"
CONTROLS_START, CONTROLS_END = "<!-- controls-table:start -->", "<!-- controls-table:end -->"


def _replace(text: str, start: str, end: str, body: str) -> str:
    block = f"{start}\n{body}\n{end}"
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)


def render(readme: str, plans: dict[str, Plan] | None = None) -> str:
    """The README with its generated tables: the stack settings, and (given the staging and
    production plans) the FSBP controls with their status in those plans."""
    text = _replace(readme, START, END, settings.config_table())
    if plans is not None:
        text = _replace(text, CONTROLS_START, CONTROLS_END, controls.table(plans))
    return text


def main() -> int:
    text = README.read_text()
    new = render(text, controls.plans())
    if new != text:
        README.write_text(new)
        print("README.md updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
