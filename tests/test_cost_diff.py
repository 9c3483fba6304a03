"""tools/cost_diff.py: the cost change a pull request's comment shows (issue 28)."""

from __future__ import annotations

import subprocess

from testsupport.tools import not_a_checkout, require_tool
from tools import cost_diff, costs
from tools.plan_compare import new_dir, tree_at


def test_the_report_totals_each_plan_and_lists_what_moved():
    base = {"staging, host": {"EC2": 30.0, "EBS": 4.0}, "staging, cluster": {"RDS": 50.0}}
    head = {"staging, host": {"EC2": 60.0, "EBS": 4.0}, "staging, cluster": {"RDS": 50.0}}
    text = cost_diff.report(base, head)
    assert text.startswith(cost_diff.MARKER)
    assert "| staging, host | 34.00 | 64.00 | +30.00 |" in text
    assert "| staging, cluster | 50.00 | 50.00 | ±0.00 |" in text
    assert "| staging, host | EC2 | +30.00 |" in text and "EBS |" not in text
    assert "No priced item changes." in cost_diff.report(base, base)
    assert "| staging, host | 34.00 | 0.00 | −34.00 |" in cost_diff.report(base, {"staging, cluster": {"RDS": 50.0}})


def test_a_bigger_production_host_costs_what_aws_charges_for_the_difference(tmp_path):
    if subprocess.run([require_tool("git"), "rev-parse", "HEAD"], cwd=cost_diff.ROOT, capture_output=True).returncode:
        not_a_checkout()
    base = tree_at("HEAD", new_dir(tmp_path / "base"))
    head = tree_at("HEAD", new_dir(tmp_path / "head"))
    schema = head / "settings" / "schema.py"
    text = schema.read_text()
    assert '_per_stack(None, "t3.medium", "t3.large")' in text
    schema.write_text(text.replace('_per_stack(None, "t3.medium", "t3.large")',
                                   '_per_stack(None, "t3.medium", "t3.xlarge")'))
    report = cost_diff.report(cost_diff.priced(base), cost_diff.priced(head))
    # t3.large -> t3.xlarge, on-demand per hour, over AWS's 730-hour month: about $60.74.
    step = (costs.EC2_HOUR["t3.xlarge"] - costs.EC2_HOUR["t3.large"]) * costs.HOURS
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.splitlines() if line.count("|") == 5}
    assert rows["production, host"].endswith(f"| +{step:,.2f} |"), report
    assert all(rows[name].endswith("| ±0.00 |") for name in ("staging, host", "staging, cluster",
                                                              "production, cluster")), report
