"""Cost of the offline plan: wall time and peak memory of `python -m tools.plan --stack S` next
to the floor, a Python process that only imports the SDK modules the program uses.

The runs are interleaved (floor, dev, staging, production, floor, ...) in one process tree, so
a noisy neighbour hits all of them alike; each figure is the median of --runs."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.common import Sample, measure, median, table

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SDKS = ("pulumi", "pulumi_aws", "pulumi_docker", "pulumi_cloudflare", "pulumi_random", "pulumi_tls",
        "pulumi_command")
TARGETS = {"time": 1.5, "memory": 1.3}
LIST_MODULES = f"""
import sys
from offline import harness
harness.run("production")
sdk = {SDKS!r} + ("yaml", "crossplane", "grpc", "google")
print("\\n".join(sorted(m for m in sys.modules if m.split(".")[0] in sdk)))
"""


def sdk_modules() -> list[str]:
    """Every SDK module the production plan loads (pulumi_aws loads its submodules lazily, so
    `import pulumi_aws` alone would be a floor far below what the program needs)."""
    out = subprocess.run([PY, "-c", LIST_MODULES], capture_output=True, text=True, cwd=ROOT, check=True)
    return out.stdout.split()


def subjects(floor_modules: list[str]) -> dict[str, list[str]]:
    script = "import importlib\nfor m in " + repr(floor_modules) + ":\n    importlib.import_module(m)\n"
    out = {"floor": [PY, "-c", script]}
    for stack in ("dev", "staging", "production"):
        out[stack] = [PY, "-m", "tools.plan", "--stack", stack, "--format", "json"]
    return out


def import_costs(runs: int) -> list[tuple[str, float, float]]:
    """What each SDK adds on top of `import pulumi`: where a smaller floor would come from."""
    base = [measure([PY, "-c", "import pulumi"], cwd=str(ROOT)) for _ in range(runs)]
    rows = [("pulumi", median([s.seconds for s in base]), median([s.peak_rss_mb for s in base]))]
    for sdk in SDKS[1:]:
        samples = [measure([PY, "-c", f"import pulumi, {sdk}"], cwd=str(ROOT)) for _ in range(runs)]
        rows.append((sdk, median([s.seconds for s in samples]) - rows[0][1],
                     median([s.peak_rss_mb for s in samples]) - rows[0][2]))
    # pulumi_aws loads a submodule only when it is used; pulumi_cloudflare's package __init__
    # loads all of its hundreds of resource modules, so even one of its classes costs them all.
    for narrow in ("pulumi_aws.ec2", "pulumi_cloudflare.dns_record"):
        samples = [measure([PY, "-c", f"import pulumi, {narrow}"], cwd=str(ROOT)) for _ in range(runs)]
        rows.append((f"{narrow} alone", median([s.seconds for s in samples]) - rows[0][1],
                     median([s.peak_rss_mb for s in samples]) - rows[0][2]))
    return rows


def run(runs: int) -> tuple[str, str]:
    modules = sdk_modules()
    samples: dict[str, list[Sample]] = {name: [] for name in subjects(modules)}
    for _ in range(runs):
        for name, argv in subjects(modules).items():
            samples[name].append(measure(argv, cwd=str(ROOT)))
    floor_t = median([s.seconds for s in samples["floor"]])
    floor_m = median([s.peak_rss_mb for s in samples["floor"]])
    rows = []
    for name, got in samples.items():
        t, m = median([s.seconds for s in got]), median([s.peak_rss_mb for s in got])
        rows.append((name, f"{t:.2f}", f"{m:.0f}", f"{t / floor_t:.2f}", f"{m / floor_m:.2f}"))
    prod_t = median([s.seconds for s in samples["production"]]) / floor_t
    prod_m = median([s.peak_rss_mb for s in samples["production"]]) / floor_m
    costs = import_costs(max(3, runs // 2))
    text = f"floor: import of the {len(modules)} SDK modules the production plan loads\n"
    text += table(["subject", "wall s", "peak MB", "time/floor", "mem/floor"], rows)
    text += "\n\nimport cost on top of `import pulumi` (median):\n"
    text += table(["module", "+ s", "+ MB"], [(n, f"{t:.2f}", f"{m:.0f}") for n, t, m in costs])
    verdict = "meets" if prod_t <= TARGETS["time"] and prod_m <= TARGETS["memory"] else "misses"
    summary = (f"plan: production {prod_t:.2f}x floor time (target <= {TARGETS['time']}), "
               f"{prod_m:.2f}x floor memory (target <= {TARGETS['memory']}): {verdict} the targets")
    return text, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="offline plan cost against the import floor")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    text, summary = run(args.runs)
    print(text)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
