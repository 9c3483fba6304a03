"""Finding the real tools the tests drive."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


class MissingToolError(Exception):
    """A real program or package the caller needs is not on this machine."""

    def __init__(self, what: str, detail: str = "") -> None:
        self.what = what
        self.detail = detail
        super().__init__(f"missing tool: {what}" + (f" ({detail})" if detail else "") + "; .ci/run installs it")


def missing(what: str, detail: str = "") -> NoReturn:
    raise MissingToolError(what, detail)


def require_tool(name: str) -> str:
    """Path of a real program. Tools installed into this virtualenv (gixy) sit next to the
    interpreter; checkov has a virtualenv of its own (.ci/run)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent)) \
        or shutil.which(name, path=str(ROOT / ".ci" / "checkov-venv" / "bin"))
    if path:
        return path
    missing(name)


def not_a_checkout() -> NoReturn:
    """A test that asks git about this tree, in a tree git does not know (an unpacked archive,
    or a container's checkout git distrusts): skipped on a laptop, a failure in CI."""
    missing("a git checkout of this repository", "in a container: git config --global --add safe.directory")
