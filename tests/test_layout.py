"""The layout issue 27 settled, held: which packages may import which, and no module of the
program or its tools over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The program (what `pulumi up` runs) and the operators' tools and policy pack.
PROGRAM = ("__main__.py", "sdk_internals.py", "composition", "placements", "services", "components", "configs",
           "settings", "deploy")
OPERATOR = ("tools", "policy", "offline")
MAX_LINES = 450


def _modules(*roots: str) -> list[Path]:
    paths: list[Path] = []
    for root in roots:
        path = ROOT / root
        paths += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "venv" not in p.parts)
    return paths


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", _modules(*PROGRAM, *OPERATOR), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_program_or_operator_module_imports_test_support(path):
    assert not _imports(path) & {"testsupport", "tests", "pytest"}


@pytest.mark.parametrize("path", _modules(*PROGRAM), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_program_never_imports_the_tools_or_the_mock_engine(path):
    assert not _imports(path) & {"tools", "offline", "bench"}


@pytest.mark.parametrize("path", _modules("services", "configs"), ids=lambda p: str(p.relative_to(ROOT)))
def test_service_specs_and_configs_are_plain_data_of_no_placement(path):
    """A spec says what a service is; how a placement runs it stays in placements/ and components/."""
    assert not _imports(path) & {"components", "placements", "composition", "pulumi_docker", "pulumi_aws",
                                 "pulumi_cloudflare", "pulumi_command"}


@pytest.mark.parametrize("path", _modules(*PROGRAM, *OPERATOR), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_450_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES
