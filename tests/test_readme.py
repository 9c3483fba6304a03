"""The README is the newcomer's entry point: its commands exist and its tables are current."""

from __future__ import annotations

import os

from tests.conftest import ROOT
from tools import docs


def test_config_table_is_generated_from_the_schema():
    text = (ROOT / "README.md").read_text()
    assert docs.render(text) == text, "run `python -m tools.docs` to refresh the README"
    assert "| `storiesofsoftware:apiReplicas` | `1` | `2` | `3` |" in text


def test_every_key_is_documented():
    import settings

    text = (ROOT / "README.md").read_text()
    for key in settings.KEYS:
        assert f"`storiesofsoftware:{key.name}`" in text
    for name in settings.SECRET_KEYS:
        assert f"`storiesofsoftware:{name}` (secret)" in text


def test_the_two_commands_exist_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    for command in ("bin/main", "bin/test"):
        assert f"{command}    #" in text
        assert os.access(ROOT / command, os.X_OK)
    assert "exec bin/test" in (ROOT / ".ci" / "run").read_text()
