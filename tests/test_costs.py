"""The monthly cost estimate (tools/costs.py): counted from the plans, and the docs show what the
plans give."""

from __future__ import annotations

import pytest

from testsupport.plans import cluster_plan_for, plan_for
from testsupport.tools import ROOT
from tools import costs, docs


def test_the_docs_carry_the_estimate_of_the_current_plans():
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert docs.render_architecture(page) == page, "run `python -m tools.docs` to refresh docs/architecture.md"
    assert costs.PRICED_ON in page


def test_the_host_estimate_by_hand():
    """staging's host: one t3.medium, 20 + 50 GB of gp3, one Elastic IP, 730 hours."""
    expected = 0.0416 * 730 + (20 + 50) * 0.08 + 0.005 * 730
    assert costs.total(costs.estimate(plan_for("staging"))) == pytest.approx(expected)


def test_the_cluster_estimate_counts_what_production_registers():
    lines = {line.item: line for line in costs.estimate(cluster_plan_for("production"))}
    assert lines["NAT gateway"].quantity == "3", "one NAT per zone"
    assert lines["Interface endpoints"].quantity == "4 x 3 zones"
    assert lines["RDS PostgreSQL db.t4g.medium Multi-AZ"].monthly == pytest.approx(0.065 * 2 * 730)
    assert lines["ElastiCache cache.t4g.small"].quantity == "2 nodes"
    # Fargate at each service's minimum: edge 2 x 0.5 vCPU, API 2 x 1, frontend 2 x 1, n8n main,
    # webhook and one worker 1 x 1 each.
    assert lines["Fargate vCPU"].quantity == "8 vCPU"
    assert "EC2 t3.large" not in lines


def test_the_cluster_costs_more_than_the_host_on_every_stack():
    for stack in ("staging", "production"):
        host = costs.total(costs.estimate(plan_for(stack)))
        cluster = costs.total(costs.estimate(cluster_plan_for(stack)))
        assert cluster > 3 * host, (stack, host, cluster)
