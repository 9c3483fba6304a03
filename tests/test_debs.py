"""Trixie's pgBackRest 2.55.1 as an unpacked tree (testsupport/debs.py): it runs on the tree's
own glibc, and every library it links resolves inside the tree."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from testsupport.debs import pgbackrest_tree

MULTIARCH = "x86_64-linux-gnu"


@pytest.fixture(scope="module")
def tree() -> Path:
    return pgbackrest_tree()


def _loader(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The tree's ld.so, as a chroot would run it; --inhibit-cache keeps the host's ld.so.cache
    out, though the host's default directories stay a fallback (hence the path check below)."""
    library_path = ":".join(str(tree / d / MULTIARCH) for d in ("usr/lib", "lib") if (tree / d / MULTIARCH).is_dir())
    return subprocess.run([str(tree / "usr/lib64/ld-linux-x86-64.so.2"), "--inhibit-cache", "--library-path",
                           library_path, *args], capture_output=True, text=True, timeout=60, check=False)


def test_version_is_alpines(tree):
    result = _loader(tree, str(tree / "usr/bin/pgbackrest"), "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pgBackRest 2.55.1"


def test_links_only_the_trees_libraries(tree):
    result = _loader(tree, "--list", str(tree / "usr/bin/pgbackrest"))
    assert result.returncode == 0, result.stderr
    assert "not found" not in result.stdout
    resolved = re.findall(r"=> (/\S+)", result.stdout)
    assert any(Path(p).name == "libc.so.6" for p in resolved)
    assert [p for p in resolved if not p.startswith(f"{tree}/")] == []


def test_help_backup(tree):
    result = _loader(tree, str(tree / "usr/bin/pgbackrest"), "help", "backup")
    assert result.returncode == 0, result.stderr
    assert "pgBackRest 2.55.1 - 'backup' command help" in result.stdout
