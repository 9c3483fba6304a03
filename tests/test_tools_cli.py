"""The operator tools' command lines: --help, a word on stderr before the slow part, and
`tools.docs --check` for CI (issue 28)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from testsupport.plans import CLOUD_STACKS, cluster_plan_for, plan_for
from tools import docs
from tools.plan_compare import ROOT


@pytest.mark.parametrize("tool", ["tools.docs", "tools.costs", "tools.plan", "tools.cost_diff",
                                  "tools.plan_compare", "tools.policy"])
def test_every_tool_has_help(tool):
    result = subprocess.run([sys.executable, "-m", tool, "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: python -m {tool}"), result.stderr


def test_docs_check_names_a_stale_page_and_writes_nothing(tmp_path, monkeypatch, capsys):
    for name in ("README", "SECURITY", "CONFIGURATION", "ARCHITECTURE"):
        original = getattr(docs, name)
        copy = tmp_path / original.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(original, copy)
        monkeypatch.setattr(docs, name, copy)
    plans = {stack: plan_for(stack) for stack in CLOUD_STACKS}
    cost_plans = {f"{stack}, {placement}": (plan_for(stack) if placement == "host" else cluster_plan_for(stack))
                  for placement in ("host", "cluster") for stack in CLOUD_STACKS}
    check = ["--check"]
    assert docs.main(check, plans, cost_plans) == 0
    page = tmp_path / "docs" / "configuration.md"
    stale = page.read_text().replace("| `storiesofsoftware:domain` |", "| `storiesofsoftware:domain-renamed` |")
    assert stale != page.read_text()
    page.write_text(stale)
    capsys.readouterr()
    assert docs.main(check, plans, cost_plans) == 1
    assert "docs/configuration.md: stale" in capsys.readouterr().err
    assert page.read_text() == stale, "--check writes nothing"
    assert docs.main([], plans, cost_plans) == 0 and page.read_text() != stale
