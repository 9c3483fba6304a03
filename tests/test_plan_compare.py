"""tools/plan_compare.py: the check behind "plans identical before and after" (issue 27)."""

from __future__ import annotations

import subprocess

from testsupport.tools import not_a_checkout, require_tool
from tools import plan_compare


def test_differences_name_what_was_added_removed_and_changed():
    base = {"dev": {"a": {"inputs": {"x": 1, "y": 2}, "protect": False}, "gone": {"inputs": {}}}}
    head = {"dev": {"a": {"inputs": {"x": 1, "y": 3}, "protect": True}, "new": {"inputs": {}}}}
    assert plan_compare.differences(base, head) == [
        "dev: removed gone", "dev: added new", "dev: changed a inputs y", "dev: changed a protect"]
    assert plan_compare.differences(base, base) == []


def test_a_real_tree_compares_identical_to_itself_and_a_changed_constant_shows(tmp_path):
    if subprocess.run([require_tool("git"), "rev-parse", "HEAD"], cwd=plan_compare.ROOT,
                      capture_output=True).returncode:
        not_a_checkout()
    base = plan_compare.tree_at("HEAD", plan_compare.new_dir(tmp_path / "base"))
    head = plan_compare.tree_at("HEAD", plan_compare.new_dir(tmp_path / "head"))
    module = head / "placements" / "cluster_tasks.py"
    module.write_text(module.read_text().replace("DISCOVERY_TTL = 10", "DISCOVERY_TTL = 30"))
    found = plan_compare.differences(plan_compare.plans_of(base), plan_compare.plans_of(head))
    # Only the Cloud Map names' TTL, on both cluster plans, one per discovered service.
    assert found and all("-cluster: changed" in line and "servicediscovery/service:Service" in line
                         and line.endswith("inputs dnsConfig") for line in found), found
    assert {line.split(":")[0] for line in found} == {"staging-cluster", "production-cluster"}
