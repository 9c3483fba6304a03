"""Faults on the real Docker engine (issue 29): a container's process killed the way a crash or
the kernel's OOM killer kills it, writers that record every write the database acknowledged, and
what the load through the edge saw meanwhile.

`docker kill` is not a crash: the engine takes any container it signalled through its kill API
as one the user stopped, and `unless-stopped` never restarts it (tests/test_docker_engine.py),
so the restart policy would never be exercised. The process is killed from outside instead, by its host pid, from a helper container
in the host's pid namespace (the tests need no privilege of their own for it).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from testsupport import engine
from testsupport.rollout import Outcome

# The drill's table: created by the writer as the application's role (which owns its schema).
PG_TABLE = "sos_drill_writes"
REDIS_KEY = "sos:drill:acks"


def inspect(host: str, cid: str) -> dict:
    return json.loads(engine.docker(host, "inspect", cid).stdout)[0]


def crash(host: str, cids: Iterable[str], helper_image: str) -> float:
    """SIGKILL to each container's main process at once. Returns the time just before the helper
    started: what the load saw from then on (requests in flight at the kill among it) counts."""
    states = [inspect(host, cid) for cid in cids]
    targets = [(state["State"]["Pid"], state["Id"]) for state in states]
    assert all(pid for pid, _ in targets), "a container to crash is not running"
    # Each pid only while it is still that container's (its cgroup names the container): a pid
    # the kernel gave to another process meanwhile is refused, not killed.
    script = " && ".join(f"grep -q {full_id} /proc/{pid}/cgroup" for pid, full_id in targets)
    script += " && kill -KILL " + " ".join(str(pid) for pid, _ in targets)
    before = time.time()
    engine.docker(host, "run", "--rm", "--label", engine.LABEL, "--network", "none", "--pid", "host",
                  "--entrypoint", "sh", helper_image, "-c", script)
    return before


def back(host: str, cid: str, restarts_before: int) -> bool:
    """Restarted by the engine's policy, running, and healthy where it has a health check."""
    state = inspect(host, cid)
    health = state["State"].get("Health")
    return (state["RestartCount"] > restarts_before and state["State"]["Running"]
            and (health is None or health["Status"] == "healthy"))


def restarts(host: str, cid: str) -> int:
    return int(inspect(host, cid)["RestartCount"])


# ----------------------------------------------------------------------------- writers

PG_WRITER = f"""
export PGCONNECT_TIMEOUT=3
psql -XtAq -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS {PG_TABLE} (id bigserial PRIMARY KEY, \
at timestamptz NOT NULL DEFAULT now())" || exit 1
echo ready
while :; do
    if id="$(psql -XtAq -v ON_ERROR_STOP=1 -c "INSERT INTO {PG_TABLE} DEFAULT VALUES RETURNING id" 2>/dev/null)" \
        && [ -n "$id" ]; then
        echo "ack $id"
    else
        echo fail; sleep 0.2
    fi
    sleep 0.05
done
"""
# INCR's answer is the counter after this write: a write Redis lost would hand out its number
# again, so the acknowledged numbers must all differ.
REDIS_WRITER = f"""
redis-cli -h redis --no-auth-warning PING | grep -q PONG || exit 1
echo ready
while :; do
    n="$(redis-cli -h redis --no-auth-warning INCR {REDIS_KEY} 2>/dev/null)"
    case "$n" in
        ''|*[!0-9]*) echo fail; sleep 0.2 ;;
        *) echo "ack $n" ;;
    esac
    sleep 0.05
done
"""


@dataclass
class Writer:
    host: str
    name: str

    def acked(self) -> list[int]:
        logs = engine.docker(self.host, "logs", self.name).stdout.split("\n")
        return [int(line.split()[1]) for line in logs if line.startswith("ack ")]

    def failed(self) -> int:
        return engine.docker(self.host, "logs", self.name).stdout.split("\n").count("fail")

    def stop(self) -> None:
        engine.docker(self.host, "rm", "-f", self.name, check=False)


def start_writer(host: str, name: str, image: str, network: str, script: str, env: dict[str, str]) -> Writer:
    """A client container on the data network, as the API is: it writes in a loop and prints
    `ack N` for each write the server acknowledged (the secrets come as its environment, never
    on a command line)."""
    engine.docker(host, "rm", "-f", name, check=False)
    args = ["run", "-d", "--name", name, "--label", engine.LABEL, "--network", network, "--user", "0:0",
            "--entrypoint", "sh"]
    for key in env:
        args += ["-e", key]  # the value from the CLI's own environment
    result = subprocess.run(["docker", *args, image, "-c", script], env={**engine.cli_env(host), **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    writer = Writer(host, name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        logs = engine.docker(host, "logs", name, check=False)
        if "ready" in logs.stdout:
            return writer
        if not inspect(host, name)["State"]["Running"]:
            raise AssertionError(f"writer {name} stopped: {logs.stdout[-500:]} {logs.stderr[-500:]}")
        time.sleep(0.3)
    raise AssertionError(f"writer {name} never became ready")


# ----------------------------------------------------------------------------- what users saw

def kind(outcome: Outcome) -> str:
    """A status code, or the error's kind (refused, reset, timeout) without its text."""
    return outcome.detail.split(":", 1)[0]


def started_at(host: str, cid: str) -> float:
    """When the engine last started the container (its State.StartedAt, nanoseconds cut)."""
    from datetime import datetime

    stamp = inspect(host, cid)["State"]["StartedAt"]
    seconds, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(seconds + "+00:00").timestamp() + float("0." + (fraction or "0"))


@dataclass
class FaultResult:
    name: str
    killed_at: float
    back_at: float | None                      # the engine restarted it and it is healthy
    outcomes: list[Outcome] = field(default_factory=list)
    writes_failed: dict[str, int] = field(default_factory=dict)
    restarted_at: float | None = None          # the engine started it again (latest of the crashed)
    settled: bool = False                      # every target served again, for 3 s running

    @property
    def restarted_s(self) -> float | None:
        return None if self.restarted_at is None else self.restarted_at - self.killed_at

    @property
    def bad(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def back_s(self) -> float | None:
        return None if self.back_at is None else self.back_at - self.killed_at

    @property
    def users_recovered_s(self) -> float:
        """From the kill to the last request that failed (0: none failed)."""
        return max((o.at + o.seconds - self.killed_at for o in self.bad), default=0.0)

    def counts(self) -> dict[str, Counter]:
        by_target: dict[str, Counter] = {}
        for o in self.outcomes:
            by_target.setdefault(o.target, Counter())[kind(o)] += 1
        return by_target

    @property
    def slowest_s(self) -> float:
        return max((o.seconds for o in self.outcomes), default=0.0)


def table(results: list[FaultResult]) -> str:
    """The drill's figures, as docs/benchmarks.md and the issue's note give them."""
    lines = ["| fault | restarted s | healthy s | last failed request s | slowest request s | "
             "what users saw, by target | failed writes (pg, redis) |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        seen = "; ".join(f"{target.split('/')[0]}: " + ", ".join(f"{k} {n}" for k, n in sorted(c.items()))
                         for target, c in sorted(r.counts().items()))
        lines.append(f"| {r.name} | {r.restarted_s or 0:.1f} | {r.back_s:.1f} | {r.users_recovered_s:.1f} | {r.slowest_s:.1f} | {seen} | "
                     f"{r.writes_failed.get('pg', 0)}, {r.writes_failed.get('redis', 0)} |"
                     if r.back_s is not None else f"| {r.name} | | not back | | | {seen} | |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- alerts

def prometheus(host: str, cid: str, path: str) -> dict:
    """Prometheus's HTTP API, asked from inside its container (it is published nowhere)."""
    from configs.monitoring import PROMETHEUS_PORT

    out = engine.docker(host, "exec", cid, "wget", "-q", "-O", "-", f"http://127.0.0.1:{PROMETHEUS_PORT}{path}")
    return json.loads(out.stdout)["data"]


def alerts(host: str, cid: str, state: str = "firing") -> set[tuple[str, str]]:
    """The alerts Prometheus holds in `state` now, as (name, job)."""
    return {(a["labels"]["alertname"], a["labels"].get("job", ""))
            for a in prometheus(host, cid, "/api/v1/alerts")["alerts"] if a["state"] == state}


def fired_since(host: str, cid: str, since: float) -> set[tuple[str, str]]:
    """Every alert that was firing at any evaluation since `since` (Prometheus's ALERTS series),
    as (name, job)."""
    from urllib.parse import quote

    seconds = max(1, int(time.time() - since) + 1)
    query = quote(f'max_over_time(ALERTS{{alertstate="firing"}}[{seconds}s])')
    return {(r["metric"]["alertname"], r["metric"].get("job", ""))
            for r in prometheus(host, cid, f"/api/v1/query?query={query}")["result"]}


def hold_down(host: str, cids: Iterable[str], helper_image: str) -> float:
    """A lasting fault: the restart policy suspended, then the crash."""
    cids = list(cids)
    for cid in cids:
        engine.docker(host, "update", "--restart=no", cid)
    return crash(host, cids, helper_image)


def release(host: str, cids: Iterable[str], policy: str) -> None:
    """The fault repaired: the policy given back, the containers started."""
    for cid in cids:
        engine.docker(host, "update", f"--restart={policy}", cid)
        engine.docker(host, "start", cid)
