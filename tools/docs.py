"""Regenerate the README's generated sections: `python -m tools.docs` (tests fail when stale)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import settings

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def render(readme: str) -> str:
    block = f"{START}\n{settings.config_table()}\n{END}"
    return re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S)


def main() -> int:
    text = README.read_text()
    new = render(text)
    if new != text:
        README.write_text(new)
        print("README.md updated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
