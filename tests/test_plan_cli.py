"""`python -m tools.plan` as an operator or a CI job runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from testsupport.plans import STACKS, plan_for
from testsupport.tools import ROOT

FORMATS = ("table", "json", "mermaid")


def run_plan(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG")}
    return subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def outputs() -> dict[tuple[str, str], subprocess.CompletedProcess]:
    # Each run is a process of its own: side by side, one per core.
    runs = [(s, f) for s in STACKS for f in FORMATS]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(runs, pool.map(lambda run: run_plan("--stack", run[0], "--format", run[1]), runs),
                        strict=True))


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_stack_plans_in_every_format(outputs, stack, fmt):
    result = outputs[(stack, fmt)]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # No generated secret appears in any format.
    for secret in plan_for(stack).secret_values:
        assert secret.strip() not in result.stdout


@pytest.mark.parametrize("stack", STACKS)
def test_json_has_the_documented_shape(outputs, stack):
    doc = json.loads(outputs[(stack, "json")].stdout)
    assert doc["stack"] == stack and doc["project"] == "storiesofsoftware"
    fields = {"urn", "type", "name", "parent", "provider", "dependsOn", "protect",
              "retainOnDelete", "deleteBeforeReplace", "inputs"}
    assert all(set(r) == fields for r in doc["resources"])
    assert len(doc["resources"]) == len(plan_for(stack).resources)
    passwords = [r for r in doc["resources"] if r["type"] == "random:index/randomPassword:RandomPassword"]
    assert passwords and all(r["inputs"]["length"] >= 32 for r in passwords)
    # Inputs use the engine's camelCase names.
    networks = [r for r in doc["resources"] if r["type"] == "docker:index/network:Network"]
    assert all("internal" in r["inputs"] for r in networks)
    assert doc["outputs"]["siteUrl"].startswith("https://")
    if stack != "dev":
        instance = next(r for r in doc["resources"] if r["type"] == "aws:ec2/instance:Instance")
        assert instance["inputs"]["userData"] == "[secret]"
        assert "metadataOptions" in instance["inputs"]


@pytest.mark.parametrize("stack", STACKS)
def test_table_is_a_tree_by_component(outputs, stack):
    text = outputs[(stack, "table")].stdout
    lines = text.splitlines()
    assert lines[0] == f"stack {stack} of storiesofsoftware: {len(plan_for(stack).resources)} resources"
    assert "  # networks  (storiesofsoftware:platform:ContainerNetworks)" in lines
    assert "    + networks-data  (docker:index/network:Network)  [delete-first]" in lines
    if stack == "production":
        assert "    + host-data  (aws:ebs/volume:Volume)  [protect, retain]" in lines


def test_mermaid_shows_components_and_their_dependencies(outputs):
    text = outputs[("production", "mermaid")].stdout
    assert text.startswith("flowchart LR\n")
    nodes = dict(line.strip().split("[", 1) for line in text.splitlines()[1:] if "[" in line)
    by_name = {label.split("<br/>")[0].strip('"'): node for node, label in nodes.items()}
    assert {"secrets", "network", "host", "networks"} <= set(by_name)
    assert f"  {by_name['host']} --> {by_name['network']}" in text
    assert f"  {by_name['networks']} --> {by_name['host']}" in text


def test_unknown_stack_exits_nonzero_without_traceback():
    result = run_plan("--stack", "qa")
    assert result.returncode == 1
    assert "no stack 'qa'" in result.stderr and "Traceback" not in result.stderr


def test_config_error_exits_nonzero_with_the_message_and_no_traceback():
    result = run_plan("--stack", "production", "--config", "apiReplicas=1",
                      "--config", "images={redis: 'redis:latest'}")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "storiesofsoftware:apiReplicas on stack production" in result.stderr
    assert "storiesofsoftware:images.redis on stack production" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback():
    result = run_plan("--stack", "dev", "--config", "apiReplicas=0", "--debug")
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_program_exception_is_a_short_message(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text("raise ValueError('the program broke')\n")
    result = run_plan("--stack", "dev", "--program-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == "error: stack dev: the program broke"


def test_duplicate_names_fail_the_plan(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    (tmp_path / "__main__.py").write_text(
        "import pulumi_random as r\nr.RandomId('x', byte_length=4)\nr.RandomId('x', byte_length=8)\n")
    result = run_plan("--stack", "dev", "--program-dir", str(tmp_path))
    assert result.returncode == 1
    assert "duplicate resource" in result.stderr and "::x" in result.stderr


def test_bad_usage_exits_2():
    assert run_plan("--stack", "dev", "--format", "yaml").returncode == 2
    assert run_plan("--stack", "dev", "--config", "novalue").returncode == 2


def test_write_files_masks_secrets(tmp_path):
    result = run_plan("--stack", "staging", "--write-files", str(tmp_path))
    assert result.returncode == 0, result.stderr
    user_data = tmp_path / "host-instance" / "user-data"
    text = user_data.read_text()
    assert text.startswith("#cloud-config\n")
    assert "[secret]" in text
    assert "OPENSSH PRIVATE KEY-----\n    [secret]" in text or "[secret]" in text
    for secret in plan_for("staging").secret_values:
        for line in secret.strip().splitlines():
            if len(line) >= 8 and "-----" not in line:
                assert line not in text


def test_malformed_yaml_in_config_is_a_usage_error_naming_the_key_without_a_traceback():
    result = run_plan("--stack", "dev", "--config", "apiReplicas=[1, 2")
    assert result.returncode == 2
    assert "--config apiReplicas: not YAML at column 6" in result.stderr
    assert "Traceback" not in result.stderr
