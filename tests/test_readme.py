"""The README is the newcomer's entry point: its commands exist and its tables are current."""

from __future__ import annotations

import os

from testsupport.tools import ROOT
from tools import docs


def test_config_table_is_generated_from_the_schema():
    text = (ROOT / "docs" / "configuration.md").read_text()
    assert docs.render_configuration(text) == text, "run `python -m tools.docs` to refresh docs/configuration.md"
    assert "| `storiesofsoftware:apiReplicas` | `1` | `2` | `3` |" in text
    assert "(docs/configuration.md)" in (ROOT / "README.md").read_text()


def test_every_key_is_documented():
    import settings

    text = (ROOT / "docs" / "configuration.md").read_text()
    for key in settings.KEYS:
        assert f"`storiesofsoftware:{key.name}`" in text
    for name in settings.EXTERNAL_SECRETS:
        assert f"`storiesofsoftware:{name}` (secret)" in text


def test_the_two_commands_exist_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text()
    for command in ("bin/main", "bin/test"):
        assert f"{command}    #" in text
        assert os.access(ROOT / command, os.X_OK)
    # Without a group, .ci/run runs the README's test command (its engine stops after it); a
    # group runs its part of the same command.
    ci = (ROOT / ".ci" / "run").read_text()
    assert '  bin/test --group "$group"\nelse\n  bin/test\nfi\n' in ci


def test_main_job_without_the_pulumi_cli_says_so_and_prints_the_offline_plan(tmp_path):
    import shutil
    import subprocess

    # A PATH with the basics but no `pulumi`, as on a machine without the CLI.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "python3", "sha256sum", "cut", "cat", "dirname", "touch", "mkdir", "env"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    result = subprocess.run([shutil.which("bash"), str(ROOT / "bin" / "main")], capture_output=True, text=True,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path)}, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "The Pulumi CLI is not installed" in result.stderr
    assert "Nothing was deployed" in result.stderr
    assert result.stdout.startswith("stack dev of storiesofsoftware: ")


def test_runbook_names_containers_and_volumes_that_production_has():
    """The restore runbook is typed under pressure: every `$P-…` name in it must exist."""
    import re

    from testsupport.plans import plan_for

    text = (ROOT / "docs" / "runbook.md").read_text()
    runbook = text[text.index("## Runbook"):text.index("## Proof")]
    named = set(re.findall(r"\$P-([a-z0-9-]+)", runbook))
    plan = plan_for("production")
    # (API and frontend containers are named by Pulumi; the runbook finds them by label.)
    existing = {r.inputs["name"] for r in plan.resources if "name" in r.inputs and r.type in (
        "docker:index/container:Container", "docker:index/volume:Volume", "docker:index/network:Network")}
    # (The config volumes are looked up from their containers: each version has a name of its own.)
    assert len(named) >= 8
    assert {f"sos-production-{n}" for n in named} <= existing, sorted(
        {f"sos-production-{n}" for n in named} - existing)


def test_the_readme_is_a_front_door_that_links_every_page_of_docs():
    """What it is, the two commands, real use, configuration, tear-down and layout in the README;
    the rest under docs/, each page linked from it and each link alive."""
    import re

    text = (ROOT / "README.md").read_text()
    for heading in ("## Two commands", "## Real use", "## Deploying a new version", "## Configuration",
                    "## Tear-down", "## Layout"):
        assert heading in text
    linked = set(re.findall(r"\(docs/([a-z-]+\.md)\)", text))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert linked == pages and {"architecture.md", "runbook.md", "benchmarks.md", "security.md"} <= pages
    for page in pages:
        for target in re.findall(r"\]\(([a-z./-]+\.md)", (ROOT / "docs" / page).read_text()):
            assert (ROOT / "docs" / target).resolve().exists(), (page, target)
    assert len(text) < 25_000, "the front door grew back into a manual"



def test_the_readme_stays_short_enough_to_read():
    """At most 20,000 characters (issue 27): details live in docs/, the README points at them."""
    assert len((ROOT / "README.md").read_text()) <= 20_000
