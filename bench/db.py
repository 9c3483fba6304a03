"""Database tuning: pgbench (Debian's) against PostgreSQL 16 (npm) with the generated postgresql.conf and with
the server's defaults (initdb's file), each in a cgroup with production's memory limit.

Both clusters are initialised alike (pgbench -i), then the runs alternate; each figure is the
median of --runs. Archiving is left out of both: this measures the tuning."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import median, table
from configs import postgres as pg
from settings import CLOUD_LIMITS, parse_limits
from testsupport.servers import PgCluster, debian_pg_bin, pg_bin

CGROUP_ROOT = Path("/sys/fs/cgroup/memory")


class Limited:
    """A cgroup v1 memory limit, when this machine lets us make one (root, v1 memory controller)."""

    def __init__(self, name: str, memory_mb: int) -> None:
        self.path: Path | None = CGROUP_ROOT / f"sos-bench-{name}-{os.getpid()}"
        try:
            self.path.mkdir()
            (self.path / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
        except OSError:
            self.path = None

    def wrap(self, argv: list[str]) -> list[str]:
        if self.path is None:
            return argv
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh", *argv]

    def remove(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass


def start(cluster: PgCluster, limit: Limited, conf: Path | None) -> None:
    opts = ["-c", f"config_file={conf}"] if conf else []
    opts += ["-c", f"port={cluster.port}", "-c", f"unix_socket_directories={cluster.sock}", "-c", "listen_addresses=''"]
    argv = cluster._server_cmd([str(cluster.bin / "pg_ctl"), "-D", str(cluster.data), "-l", str(cluster.log), "-w",
                                "-t", "120", "-o", " ".join(opts), "start"])
    result = subprocess.run(limit.wrap(argv), capture_output=True, text=True, env={**os.environ, **cluster.env})
    if result.returncode != 0:
        raise RuntimeError(result.stderr + cluster.log.read_text())


def pgbench(cluster: PgCluster, *args: str) -> str:
    # The npm server package has no pgbench; Debian's (15) drives a 16 server fine.
    result = subprocess.run([str(debian_pg_bin(15) / "pgbench"), "-h", str(cluster.sock), "-p", str(cluster.port),
                             "-U", "postgres", *args, "postgres"], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    return result.stdout


def run(runs: int, seconds: int, scale: int, clients: int) -> tuple[str, str]:
    memory_mb = parse_limits(CLOUD_LIMITS["postgres"]).memory_mb
    bin_dir = pg_bin()
    clusters: dict[str, tuple[PgCluster, Limited]] = {}
    try:
        for name in ("generated", "defaults"):
            cluster = PgCluster(bin_dir)
            cluster.initdb("bench")
            limit = Limited(name, memory_mb)
            conf = cluster.file("postgresql.conf", pg.postgresql_conf(memory_mb)) if name == "generated" else None
            start(cluster, limit, conf)
            pgbench(cluster, "-i", "-q", "-s", str(scale))
            clusters[name] = (cluster, limit)
        tps: dict[str, list[float]] = {name: [] for name in clusters}
        latency: dict[str, list[float]] = {name: [] for name in clusters}
        for _ in range(runs):
            for name, (cluster, _) in clusters.items():
                out = pgbench(cluster, "-c", str(clients), "-j", "2", "-T", str(seconds), "-M", "prepared")
                tps[name].append(float(re.search(r"tps = ([\d.]+)", out).group(1)))  # type: ignore[union-attr]
                latency[name].append(float(re.search(r"latency average = ([\d.]+) ms", out).group(1)))  # type: ignore[union-attr]
        limited = all(limit.path is not None for _, limit in clusters.values())
        rows = [(name, f"{median(tps[name]):.0f}", f"{median(latency[name]):.2f}") for name in clusters]
        ratio = median(tps["generated"]) / median(tps["defaults"])
        text = (f"pgbench scale {scale}, {clients} clients, {seconds} s x {runs}, memory limit "
                f"{memory_mb} MB{'' if limited else ' (not enforced: no writable cgroup here)'}\n")
        text += table(["postgresql.conf", "tps", "latency ms"], rows)
        summary = f"db: generated postgresql.conf {ratio:.2f}x the TPS of the defaults"
        return text, summary
    finally:
        for cluster, limit in clusters.values():
            cluster.stop()
            shutil.rmtree(cluster.root, ignore_errors=True)
            limit.remove()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pgbench: generated postgresql.conf against the defaults")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--scale", type=int, default=50)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    text, summary = run(args.runs, args.seconds, args.scale, args.clients)
    print(text)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
