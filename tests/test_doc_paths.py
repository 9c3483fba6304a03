"""The docs and stack files point only at files that exist: a moved module leaves no stale
pointer behind (issue 28)."""

from __future__ import annotations

import re
import subprocess
from pathlib import PurePosixPath

import pytest

from testsupport.tools import not_a_checkout
from tools.plan_compare import ROOT

PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *ROOT.glob("Pulumi.*.yaml")])
# A path inside this repository: it starts with one of its top-level directories.
TOP = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "venv", "__")))
PATH = re.compile(r"(?<![\w./-])((?:" + "|".join(map(re.escape, [*TOP, ".github", ".ci"])) +
                  r")/[\w./-]*[\w-])")


def _tracked() -> set[str]:
    # Tracked, or new and not ignored (a page may name a file in the same change).
    result = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        not_a_checkout()
    files = set(result.stdout.split())
    return files | {str(parent) for f in files for parent in PurePosixPath(f).parents}


def missing_paths(text: str, tracked: set[str]) -> list[str]:
    named = {m.group(1).rstrip(".") for m in PATH.finditer(text)}
    return sorted(p for p in named
                  # `configs/<file>.py` names a kind of file; a virtualenv is made, not tracked;
                  # `placements/base.Placement` names a class of a module.
                  if p not in tracked and "<" not in p and "*" not in p and "/venv" not in p
                  and f"{p.rsplit('.', 1)[0]}.py" not in tracked)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_a_page_names_exists(page):
    assert not missing_paths(page.read_text(), _tracked()), page.name


def test_the_path_check_sees_a_stale_pointer():
    text = "see `placements/cluster.py`, `placements/base.Placement` and `placements/gone.py`."
    assert missing_paths(text, _tracked()) == ["placements/gone.py"]
