"""Deploys: what a user meets while a new version goes out (`python -m bench deploy`).

- The rollout drill of tests/test_rollout.py on both orders: requests sent and failed per
  scenario under constant load, and the time each deploy takes on this machine.
- n8n, which is replaced delete-first (one main process): the gap a deploy of it costs, from
  SIGTERM to the new process answering /healthz, with the real n8n against PostgreSQL 16 — its
  first start on an empty database (all migrations) and a restart (none).
"""

from __future__ import annotations

import http.client
import tempfile
import time
from pathlib import Path

from offline import harness
from testsupport import apps, rollout
from testsupport.plans import container_env
from testsupport.servers import pg_for_n8n, wait_for
from tools.plan import write_files


def drill(legacy: bool) -> str:
    with tempfile.TemporaryDirectory(prefix="sos-bench-rollout-") as tmp, \
            rollout.Drill("dev", Path(tmp), legacy=legacy) as d:
        results = list(rollout.scenarios(d))
    return rollout.report(results), sum(r.failed for r in results), sum(r.sent for r in results)


def _healthy(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False


def n8n_gap() -> tuple[float, float, float]:
    """(first start, stop, restart) in seconds."""
    plan = harness.run("dev")
    with tempfile.TemporaryDirectory(prefix="sos-bench-n8n-") as tmp:
        files = Path(tmp) / "files"
        write_files(plan, files)
        env = container_env(plan.one("docker:index/container:Container", "n8n-svc"))
        cluster = pg_for_n8n(files, env["DB_POSTGRESDB_PASSWORD"])
        try:
            started = time.monotonic()
            n8n, home = apps.start_n8n(env, cluster.port)
            assert wait_for(lambda: _healthy(n8n.port), 240)
            first = time.monotonic() - started
            stopping = time.monotonic()
            n8n.stop(timeout=45)
            stop = time.monotonic() - stopping
            restarting = time.monotonic()
            again, _ = apps.start_n8n(env, cluster.port, home=home)
            assert wait_for(lambda: _healthy(again.port), 240)
            restart = time.monotonic() - restarting
            again.stop(timeout=45)
            apps.cleanup(home)
        finally:
            cluster.destroy()
    return first, stop, restart


def run() -> tuple[str, str]:
    ours, failed, sent = drill(legacy=False)
    before, failed_before, sent_before = drill(legacy=True)
    first, stop, restart = n8n_gap()
    text = "\n".join([
        "rollout drill, start-first replicas and edge reload:", ours, "",
        "the same drill on the order before (delete-first, edge replaced):", before, "",
        f"n8n deploy gap: stop {stop:.1f} s + start {restart:.1f} s = {stop + restart:.1f} s "
        f"(first start on an empty database, all migrations: {first:.1f} s)",
    ])
    summary = (f"deploy: {failed}/{sent} requests failed (before: {failed_before}/{sent_before}); "
               f"n8n gap {stop + restart:.1f} s")
    return text, summary
