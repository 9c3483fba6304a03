"""The suite as CI runs it: jobs side by side (`.ci/run <group>`, .github/workflows), each
group a pytest command. `fast` is every test that needs no real tool: it gates the previews and
is what a developer runs before a push (`bin/test --fast`). The real-tool tests are split by
what they drive; `servers` takes every real-tool module no other group names, so a new module
is never left out."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL_TOOLS = "real_tools"
# The real-tool groups: the modules each runs (only their real-tool tests).
MODULES: dict[str, tuple[str, ...]] = {
    # The real applications in Chromium behind the edge, and n8n's own processes.
    "browser": ("tests/test_e2e.py", "tests/test_cluster_n8n.py", "tests/test_dev_edge.py",
                "tests/test_n8n_key_rotation.py"),
    # Docker's own engine, dev's `pulumi up` replayed on it, and the fault drill on dev.
    "engine": ("tests/test_docker_engine.py", "tests/test_dev_up.py", "tests/test_fault_drill.py"),
    # The AWS provider (Terraform) against moto, and the rollout drill. (The backup drill and jobs
    # run with `servers`: one runner each, the two groups take about as long; bench/ci.py.)
    "cloud": ("tests/test_terraform.py", "tests/test_rollout.py", "tests/test_bench.py"),
}
GROUPS = ("fast", "servers", *MODULES)


def pytest_args(group: str) -> list[str]:
    """The pytest arguments of one group."""
    if group == "fast":
        # On every core, a module's tests together (its module fixtures are planned once).
        return ["-m", f"not {REAL_TOOLS}", "-n", "auto", "--dist", "loadfile"]
    if group == "servers":
        others = [module for modules in MODULES.values() for module in modules]
        return ["-m", REAL_TOOLS, *(f"--ignore={module}" for module in others)]
    if group in MODULES:
        return ["-m", REAL_TOOLS, *MODULES[group]]
    raise SystemExit(f"no test group {group!r}: one of {', '.join(GROUPS)}")


if __name__ == "__main__":
    import sys

    # `python -m testsupport.groups <group>`: the arguments, one per line (bin/test reads them);
    # `--modules <group>`: the modules a real-tool group runs.
    if sys.argv[1:2] == ["--modules"] and len(sys.argv) == 3:
        print("\n".join(MODULES[sys.argv[2]]))
    else:
        print("\n".join(pytest_args(sys.argv[1]) if len(sys.argv) == 2 else GROUPS))
