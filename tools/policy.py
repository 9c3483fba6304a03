"""The policy pack over the offline plan: `python -m tools.policy --stack production`.

Runs the same rule functions the pack gives the engine (policy/rules.py) over every resource
the program registers for a stack, with the properties and options it registers them with.
Exit 1 on any violation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from offline import harness

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "policy"))

import rules


def resources(plan: harness.Plan) -> list[rules.Resource]:
    return [rules.Resource(type=r.type, name=r.name, urn=r.urn, props=harness.unwrap(r.inputs), protect=r.protect)
            for r in plan.resources if r.custom]


def violations(plan: harness.Plan) -> list[tuple[str, str, str]]:
    return rules.check(resources(plan))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.policy", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", required=True)
    args = parser.parse_args(argv)
    failed = 0
    for stack in args.stack:
        plan = harness.run(stack)
        found = violations(plan)
        checked = len(resources(plan))
        for rule, name, message in found:
            print(f"{stack}: {rule}: {name}: {message}")
        print(f"{stack}: {checked} resources, {len(rules.RULES)} rules, {len(found)} violations")
        failed += len(found)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
