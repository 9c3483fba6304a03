"""The real applications on loopback: the Next.js site and Fastify API of tests/e2e/apps, and n8n
at the version the program pins, each started with the environment the program gives its
container. Only what ties a value to the container is changed: listen address and port, the
database host and port, and n8n's data directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from testsupport.servers import free_port, port_open, wait_for
from testsupport.tools import ROOT, missing, require_tool

E2E = ROOT / "tests" / "e2e"
APPS = E2E / "apps"
N8N_PROJECT = E2E / "n8n"
N8N_VERSION = json.loads((N8N_PROJECT / "package.json").read_text())["dependencies"]["n8n"]
# n8n's install is about 1.6 GB: .ci/run keeps it outside the clone, keyed by the lock file, so
# repeated runs on one machine install it once. A laptop may install it in place instead.
N8N_CACHE = Path(os.environ.get("SOS_N8N_CACHE", "/var/cache/storiesofsoftware/n8n"))


def _require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    missing(what, str(path))


def lock_digest(project: Path) -> str:
    return hashlib.sha256((project / "package-lock.json").read_bytes()).hexdigest()[:16]


def n8n_root() -> Path:
    """The directory holding node_modules/n8n for the pinned lock file."""
    for candidate in (N8N_CACHE / lock_digest(N8N_PROJECT), N8N_PROJECT):
        if (candidate / "node_modules" / "n8n" / "bin" / "n8n").exists():
            return candidate
    return _require(N8N_CACHE / lock_digest(N8N_PROJECT) / "node_modules" / "n8n", "n8n (tests/e2e/n8n)")


def site_digest(part: str = "site") -> str:
    """The lock file and one application's sources (`site` or `api`), build output aside: what a
    stand-in image of it is made from."""
    h = hashlib.sha256((APPS / "package-lock.json").read_bytes())
    for path in sorted((APPS / part).rglob("*")):
        if path.is_file() and ".next" not in path.parts:
            h.update(str(path.relative_to(APPS)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def build_site() -> None:
    """`next build` once per source: a production build, as the image would carry."""
    next_bin = _require(APPS / "node_modules" / "next" / "dist" / "bin" / "next", "next (tests/e2e/apps)")
    stamp = APPS / "site" / ".next" / "sos-source"
    digest = site_digest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    result = subprocess.run(["node", str(next_bin), "build", "site"], cwd=APPS, capture_output=True, text=True,
                            env={**os.environ, "NEXT_TELEMETRY_DISABLED": "1"}, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    stamp.write_text(digest)


class Process:
    """A server process with its output kept in a file, stopped with SIGTERM like Docker does."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, cwd: Path,
                 ready_timeout: float = 60, host: str = "127.0.0.1") -> None:
        self.name = name
        self.port = port
        self.host = host
        self.log_path = Path(tempfile.mkstemp(prefix=f"sos-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "SYSTEMROOT")}
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**base, **env}, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(lambda: port_open(port, host) or self.proc.poll() is not None, ready_timeout) \
                or self.proc.poll() is not None:
            output = self.output()
            self.stop()
            raise AssertionError(f"{name} did not start on port {port}:\n{output[-6000:]}")

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int | None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def start_api(env: dict[str, str], host: str = "127.0.0.1", port: int | None = None,
              wrap: Sequence[str] = ()) -> Process:
    """`wrap`: a command prefix (the benchmark pins the apps to CPUs with taskset)."""
    port = port or free_port()
    return Process("api", [*wrap, "node", "api/server.js"], {**env, "PORT": str(port), "HOST": host},
                   port, APPS, host=host)


def start_site(env: dict[str, str], host: str = "127.0.0.1", port: int | None = None,
               wrap: Sequence[str] = ()) -> Process:
    build_site()
    port = port or free_port()
    next_bin = APPS / "node_modules" / "next" / "dist" / "bin" / "next"
    return Process("site", [*wrap, "node", str(next_bin), "start", "site", "-p", str(port), "-H", host],
                   {**env, "PORT": str(port), "HOSTNAME": host}, port, APPS, host=host)


def _package_version(name: str) -> str:
    return json.loads((APPS / "node_modules" / name / "package.json").read_text())["version"]


def next_version() -> str:
    return _package_version("next")


def fastify_version() -> str:
    return _package_version("fastify")


# The official image's own ENV lines (n8n-io/n8n docker/images/n8n/Dockerfile). Production mode
# is what turns on n8n's checks of the browser's Origin (push/index.js `inProduction`).
N8N_IMAGE_ENV = {"NODE_ENV": "production", "N8N_RELEASE_TYPE": "stable"}


def start_n8n(env: dict[str, str], db_port: int, home: Path | None = None, command: str = "start",
              queue: dict[str, str] | None = None, port: int | None = None) -> tuple[Process, Path]:
    """n8n with the container's environment; its data directory (`home`, or a new one) stands
    in for the volume. `command`: `start` (the main process), `webhook` or `worker` (queue mode,
    the cluster's tasks); `queue`: what else ties queue mode to this machine (the Redis port,
    the CA that signed its certificate)."""
    root = n8n_root()
    home = home or Path(tempfile.mkdtemp(prefix="sos-n8n-home-"))
    port = port or free_port()
    started = time.monotonic()
    process = Process(f"n8n-{command}" if command != "start" else "n8n",
                      ["node", str(root / "node_modules" / "n8n" / "bin" / "n8n"), command], {
        **N8N_IMAGE_ENV,
        **env,
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "DB_POSTGRESDB_HOST": "127.0.0.1",
        "DB_POSTGRESDB_PORT": str(db_port),
        "HOME": str(home),
        "N8N_USER_FOLDER": str(home),
        **({} if queue is None else {
            # The task's health check port is its N8N_PORT (a worker serves only that one);
            # each process's task runner broker gets a port of its own (on Fargate each task has
            # its own network).
            "QUEUE_HEALTH_CHECK_PORT": str(port),
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            "QUEUE_BULL_REDIS_HOST": "127.0.0.1",
            **queue}),
    }, port, root, ready_timeout=240)
    process.startup_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return process, home


def start_redis_tls(tls: dict[str, Path], password: str, cwd: Path) -> Process:
    """Debian's Redis 7 as ElastiCache serves a replication group with in-transit encryption
    and an AUTH token: TLS only, the token as the password."""
    port = free_port()
    return Process("redis", [require_tool("redis-server"), "--port", "0", "--tls-port", str(port),
                             "--tls-cert-file", str(tls["cert"]), "--tls-key-file", str(tls["key"]),
                             "--tls-ca-cert-file", str(tls["ca"]), "--tls-auth-clients", "no",
                             "--requirepass", password, "--save", "", "--appendonly", "no"],
                   {}, port, cwd)


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def answer_workflow(name: str, path: str) -> dict:
    """An n8n workflow: a POST webhook on `path` that answers `{"answer": 42}`, computed by an
    expression (so a run proves the expression engine too)."""
    return {
        "name": name,
        "nodes": [
            {"id": str(uuid.uuid4()), "name": "Webhook", "type": "n8n-nodes-base.webhook", "typeVersion": 2,
             "position": [0, 0], "webhookId": str(uuid.uuid4()),
             "parameters": {"httpMethod": "POST", "path": path, "responseMode": "lastNode", "options": {}}},
            {"id": str(uuid.uuid4()), "name": "Answer", "type": "n8n-nodes-base.set", "typeVersion": 3.4,
             "position": [240, 0],
             "parameters": {"assignments": {"assignments": [
                 {"id": str(uuid.uuid4()), "name": "answer", "value": "={{ 20 + 22 }}", "type": "number"}]},
                 "options": {}}},
        ],
        "connections": {"Webhook": {"main": [[{"node": "Answer", "type": "main", "index": 0}]]}},
        "settings": {"executionOrder": "v1"},
        "active": False,
    }
