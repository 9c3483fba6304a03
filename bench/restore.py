"""Whole-host loss (issue 29, `python -m bench restore`, not in CI): a host lost while it writes,
and a fresh host restored from the offsite copies alone, with the runbook's own scripts.

- The source host: PostgreSQL 15 and pgBackRest 2.45, both Debian's (2.45 knows PostgreSQL up to
  15; the image's Alpine pgBackRest is at least 2.47, for 16), with the generated
  postgresql.conf (production's memory limit) and archive settings, and the generated
  pgbackrest.conf: an S3 repository (moto behind a TLS proxy on loopback, testsupport/s3.py),
  aes-256-cbc, zstd. A database of `data_mb` of rows whose text is random hex, so zstd halves
  it as it would real text, where pgbench's blank filler shrinks a hundredfold; a full backup by
  the `full-backup` job while the writes run.
- Objects: `objects` files of 2 KB to 100 KB (random bytes: images do not compress), snapshotted
  by `minio-snapshot` and shipped by `offsite` (the jobs' own scripts) to `sets/minio/`.
- Writes until the loss: one client commits a numbered row `rate` times a second and records
  every acknowledgement. After the backup, `wal_segments` segments are closed and archived one
  by one (a day of archive_timeout on a quiet server: what a restore late in the day replays).
  The loss is timed for the worst case: the instant archive_timeout makes PostgreSQL finish a
  segment, before archive_command has shipped it. Every process of the server (archive_command's
  pgBackRest too) is stopped, then killed, and the host's directories are deleted.
- A fresh host: a new data directory (initdb, as the first boot does), the runbook's
  `restore-postgres latest`, PostgreSQL started with the generated files (it fetches and replays
  the archived WAL and promotes); the newest objects set downloaded, `sha256sum -c`, untarred.
  RTO: restore start to the database answering as primary, plus the objects; RPO: the loss
  minus the commit time of the newest row present. Checked: every acknowledged row up to that
  one is there with its time, the big table's count and row hash equal the source's, every
  object's sha256 equals its source's.
- Then the same backup restored with process-max 1, the generated value and 4, each started with
  one way of fetching the WAL (synchronous archive-get again, and asynchronous prefetch with two
  queue sizes); and a delta restore onto the restored cluster after damaging some of its files
  (same host, corrupted cluster), which is then started and checked.

`pulumi up` of the new host and the transfer from a real S3 region are not here: moto is on
this machine, in Python, so a restore's download is slower per stream and gains less from
parallel streams than from S3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bench.common import table
from configs import backup
from configs import postgres as pg
from settings import CLOUD_LIMITS, parse_limits
from testsupport.s3 import REGION, MotoS3
from testsupport.servers import PgCluster, debian_pg_bin, wait_for
from testsupport.tools import require_tool

DB = "storiesofsoftware"
CIPHER_PASS = "bench-cipher-pass:with/specials&"
RTO_TARGET_S = 15 * 60
RPO_TARGET_S = 60
# Rows of the big table per INSERT; the load stops at the first batch past the size asked for.
BATCH_ROWS = 50_000


class Sizes(NamedTuple):
    data_mb: int
    objects: int
    rate: int          # the writer's commits a second
    wal_segments: int  # closed and archived between the full backup and the loss


# A day of WAL on a quiet server: archive_timeout closes a segment a minute.
FULL = Sizes(2048, 10_000, 100, 24 * 3600 // backup.ARCHIVE_TIMEOUT_S)
QUICK = Sizes(50, 500, 100, 20)


def _machine() -> str:
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    return f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GB RAM"


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:,.0f} MB"


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class Session:
    """One psql connection kept open: a statement per line in, its one result row per line out
    (psql flushes each result). The output's end means the server is gone."""

    def __init__(self, cluster: PgCluster, db: str = DB) -> None:
        self.proc = subprocess.Popen(
            [cluster.psql_bin, "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", str(cluster.sock), "-p", str(cluster.port),
             "-U", "postgres", "-d", db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1)

    def ask(self, statement: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(statement + ";\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise ConnectionError("psql is gone") from exc
        line = self.proc.stdout.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        return line.rstrip("\n")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Host:
    """A host's PostgreSQL with the generated postgresql.conf and pgbackrest.conf, and the
    credentials the stack gives it (key pair and cipher pass, in the environment)."""

    def __init__(self, s3: MotoS3, repo_path: str, memory_mb: int) -> None:
        self.bin = debian_pg_bin(15)
        self.cluster = PgCluster(self.bin)
        c = self.cluster
        self.work = c.root / "pgbackrest"
        self.metrics = c.root / "metrics"
        for path in (self.work, self.metrics):
            path.mkdir()
            if c.as_root:
                shutil.chown(path, "nobody", "nogroup")
        self.repo = backup.Repository(bucket=s3.bucket, region=REGION, endpoint="127.0.0.1", path=repo_path,
                                      port=s3.endpoint.port, uri_style="path", verify_tls=False)
        self.conf = c.file("pgbackrest.conf", backup.pgbackrest_conf(
            self.repo, pgdata=str(c.data), socket_dir=str(c.sock), pg_port=c.port, work_dir=str(self.work)))
        c.env = {"PGBACKREST_REPO1_S3_KEY": s3.key, "PGBACKREST_REPO1_S3_KEY_SECRET": s3.secret,
                 "PGBACKREST_REPO1_CIPHER_PASS": CIPHER_PASS, "PATH": f"{self.bin}:{os.environ['PATH']}"}
        self.pg_conf = c.file("postgresql.conf", pg.postgresql_conf(
            memory_mb, extra=backup.archive_settings(str(self.conf))))
        # The load is history the full backup already holds: archiving it would only fill the bucket.
        self.load_conf = c.file("postgresql-load.conf", pg.postgresql_conf(memory_mb, extra={"archive_mode": "off"}))

    def run(self, argv: list[str], timeout: float = 7200) -> str:
        result = self.cluster._run(argv, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result.stdout

    def pgbackrest(self, *args: str) -> str:
        return self.run(["pgbackrest", f"--config={self.conf}", f"--stanza={backup.STANZA}", *args])

    def start(self, conf: Path) -> None:
        """pg_ctl start with the host's file; waits as long as recovery takes to accept connections."""
        c = self.cluster
        opts = ["-c", f"config_file={conf}", "-c", f"port={c.port}", "-c", f"unix_socket_directories={c.sock}",
                "-c", "listen_addresses=127.0.0.1"]
        self.run([str(c.bin / "pg_ctl"), "-D", str(c.data), "-l", str(c.log), "-w", "-t", "7200",
                  "-o", shlex.join(opts), "start"])

    def sql(self, statement: str, db: str = DB, timeout: float = 7200) -> str:
        c = self.cluster
        result = subprocess.run([c.psql_bin, "-X", "-qtA", "-v", "ON_ERROR_STOP=1", "-h", str(c.sock), "-p",
                                 str(c.port), "-U", "postgres", "-d", db, "-c", statement],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{statement[:200]}: {result.stderr[-2000:]}")
        return result.stdout.strip()

    def primary(self) -> bool:
        try:
            return self.sql("SELECT pg_is_in_recovery()", db="postgres", timeout=10) == "f"
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def postmaster(self) -> int:
        return int((self.cluster.data / "postmaster.pid").read_text().split()[0])


def _load(host: Host, data_mb: int) -> int:
    """Rows like a blog's posts until the database holds `data_mb`; returns the row count. The
    body is hex of random bytes: 4 bits of entropy a character, so zstd halves it, about what
    it does to real text, and PostgreSQL's own pglz leaves it as it is."""
    host.sql(f"CREATE DATABASE {DB}", db="postgres")
    host.sql("CREATE EXTENSION pgcrypto")
    host.sql("CREATE TABLE posts (id bigint PRIMARY KEY, author_id int NOT NULL, created_at timestamptz NOT NULL, "
             "title text NOT NULL, body text NOT NULL)")
    rows = 0
    while int(host.sql(f"SELECT pg_database_size('{DB}')")) < data_mb * 1024 * 1024:
        host.sql(f"INSERT INTO posts SELECT g, (random() * 5000)::int, now() - random() * interval '3 years', "
                 f"md5(random()::text), encode(gen_random_bytes(256 + (random() * 700)::int), 'hex') "
                 f"FROM generate_series({rows + 1}, {rows + BATCH_ROWS}) g")
        rows += BATCH_ROWS
    host.sql("CREATE INDEX posts_author ON posts (author_id, created_at)")
    # Hint bits and the visibility map set now, as on a server that has run a while.
    host.sql("VACUUM ANALYZE posts")
    host.sql("CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), "
             "payload text NOT NULL)")
    return rows


def _posts_digest(host: Host) -> str:
    """Row count and a sum of every row's md5: order-free, one sequential scan."""
    return host.sql("SELECT count(*) || ':' || sum(('x' || left(md5(p::text), 15))::bit(60)::bigint) FROM posts p")


class Writer(threading.Thread):
    """Commits numbered rows at `rate` a second until the server dies; `acked` maps each id
    whose commit was acknowledged to the row's time (epoch text, as the server printed it): its
    clock_timestamp() at the insert, a millisecond or so before the commit."""

    def __init__(self, host: Host, rate: int) -> None:
        super().__init__(daemon=True)
        self.session = Session(host.cluster)
        self.rate = rate
        self.acked: dict[int, str] = {}
        self.started_at = time.time()

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while True:
            n += 1
            try:
                at = self.session.ask(f"INSERT INTO writes (id, payload) VALUES ({n}, md5(random()::text) || "
                                      f"md5(random()::text) || md5(random()::text)) RETURNING extract(epoch FROM at)")
            except ConnectionError:
                return
            self.acked[n] = at
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))


def _close_segments(host: Host, count: int) -> None:
    """`count` WAL segments closed with pg_switch_wal, each archived before the next (pg_wal
    never holds more than one waiting): a day of archive_timeout's forced switches on a quiet
    server (1,440) in a few minutes. The writer's rows are what each segment holds."""
    session = Session(host.cluster, db="postgres")
    try:
        for _ in range(count):
            time.sleep(0.02)
            segment = session.ask("SELECT pg_walfile_name(pg_switch_wal())")
            deadline = time.monotonic() + 60
            while session.ask("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < segment:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{segment} was not archived within a minute")
                time.sleep(0.005)
    finally:
        session.close()


def _next_finished_segment(host: Host, timeout: float) -> str:
    """Waits for PostgreSQL to finish a WAL segment (its `.ready` file appears, before
    archive_command has run) and returns its name. Polled every millisecond: an archive-push
    takes tens of milliseconds here, so the loss that follows beats it."""
    status = host.cluster.data / "pg_wal" / "archive_status"
    before = {name for name in os.listdir(status) if name.endswith(".ready")}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = [name for name in os.listdir(status) if name.endswith(".ready") and name not in before]
        if ready:
            return ready[0][:24]
        time.sleep(0.001)
    raise RuntimeError(f"no WAL segment finished within {timeout:.0f} s")


def _tree(pid: int) -> set[int]:
    """`pid` and every process below it (PostgreSQL makes each of its children a process
    group of its own, so a group kill would miss them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        found.add(todo[-1])
        todo += children.get(todo.pop(), [])
    return found


def _power_off(pid: int) -> None:
    """The host's end for the postmaster `pid` and all it started (archive_command's pgBackRest
    too): every process stopped first, until no new one appears, then killed, so none of them
    finishes anything after the moment of the loss."""
    stopped: set[int] = set()
    while True:
        new = _tree(pid) - stopped
        if not new:
            break
        for each in new:
            try:
                os.kill(each, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped |= new
    for each in stopped:
        try:
            os.kill(each, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _make_objects(root: Path, count: int) -> dict[str, str]:
    """`count` files under bucket-like folders, 2 KB to 100 KB (log-uniform), random bytes;
    returns each relative path's sha256."""
    sizes = random.Random(29)
    sums = {}
    for i in range(count):
        rel = f"content/{i % 97:02x}/object-{i:05d}.bin"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(int(2048 * (50 ** sizes.random())))
        path.write_bytes(data)
        sums[rel] = hashlib.sha256(data).hexdigest()
    return sums


def _sums_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file()}


def _sh(script: str, args: list[str], env: dict[str, str], work: Path) -> str:
    path = work / f"script-{time.monotonic_ns()}.sh"
    path.write_text(script)
    result = subprocess.run(["sh", str(path), *args], capture_output=True, text=True, timeout=3600,
                            env={**os.environ, **env})
    if result.returncode != 0:
        raise RuntimeError(f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result.stdout


def _restore_objects(s3: MotoS3, dest: Path, work: Path) -> tuple[int, float, float, float]:
    """The newest `sets/minio/<stamp>/` from the bucket (as `aws s3 cp --recursive` would),
    checked against its SHA256SUMS and untarred, as the runbook's MinIO restore; returns the
    bytes downloaded and the seconds of each step."""
    started = time.monotonic()
    client = s3.client()
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=s3.bucket, Prefix="sets/minio/") for item in page.get("Contents", [])]
    stamp = max(key.split("/")[2] for key in keys if key.endswith("/SHA256SUMS"))
    download = work / stamp
    download.mkdir(parents=True)
    size = 0
    for key in keys:
        if key.split("/")[2] == stamp:
            target = download / key.rsplit("/", 1)[1]
            client.download_file(s3.bucket, key, str(target))
            size += target.stat().st_size
    fetched = time.monotonic()
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=download, check=True)
    checked = time.monotonic()
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "-xf", str(download / "minio.tar")], check=True)
    return size, fetched - started, checked - fetched, time.monotonic() - checked


def _restore_into(host: Host, data: Path, *options: str) -> float:
    """pgBackRest's restore of the latest backup into `data` (what restore-postgres runs);
    returns its seconds."""
    if not data.exists():
        data.mkdir(mode=0o700)
        if host.cluster.as_root:
            shutil.chown(data, "nobody", "nogroup")
    started = time.monotonic()
    host.pgbackrest(f"--pg1-path={data}", *options, "restore")
    return time.monotonic() - started


def _damage(host: Host) -> str:
    """A failing disk's work on the stopped cluster: zeros over 8 MB of the big table's first
    1 GB file, and its index gone. (pgBackRest compares whole files: each damaged one comes
    back whole.)"""
    table_file = host.cluster.data / host.sql("SELECT pg_relation_filepath('posts')")
    index_file = host.cluster.data / host.sql("SELECT pg_relation_filepath('posts_author')")
    host.cluster.stop()
    with table_file.open("r+b") as f:
        f.seek(table_file.stat().st_size // 2)
        f.write(bytes(8 * 1024 * 1024))
    index_file.unlink()
    return f"8 MB zeroed in a {_mb(table_file.stat().st_size)} table file, its index deleted"


def _check_writes(acked: dict[int, str], restored: dict[int, str]) -> tuple[int, list[str]]:
    """(lost acknowledged writes, problems). Present: only acknowledged rows (and perhaps the
    one in flight), each with its time, and none missing below the newest."""
    problems = []
    newest = max(restored, default=0)
    in_flight = max(acked, default=0) + 1
    unknown = set(restored) - set(acked) - {in_flight}
    if unknown:
        problems.append(f"{len(unknown)} rows restored that were never written")
    missing = [i for i in acked if i <= newest and i not in restored]
    if missing:
        problems.append(f"{len(missing)} acknowledged rows missing before the recovery point")
    changed = [i for i in acked if i in restored and restored[i] != acked[i]]
    if changed:
        problems.append(f"{len(changed)} rows restored with another time")
    return sum(1 for i in acked if i > newest), problems


def _rows(host: Host) -> dict[int, str]:
    out = host.sql("SELECT id || '|' || extract(epoch FROM at) FROM writes ORDER BY id")
    return {int(i): at for i, at in (line.split("|") for line in out.splitlines())}


def _start_and_promote(host: Host, conf: Path) -> tuple[float, int]:
    """Starts a restored cluster and waits until it has replayed the archive and promoted;
    returns the seconds and the WAL segments it fetched from the repository."""
    started = time.monotonic()
    host.start(conf)
    if not wait_for(host.primary, 7200):
        raise RuntimeError("the restored server never came up as primary:\n" + host.cluster.log.read_text()[-3000:])
    fetched = len(re.findall(r'restored log file "[0-9A-F]{24}" from archive', host.cluster.log.read_text()))
    return time.monotonic() - started, fetched


@dataclass
class Source:
    """What the lost host leaves behind: its figures, and what the restore must give back."""
    db_bytes: int = 0
    data_bytes: int = 0
    rows: int = 0
    load_s: float = 0.0
    backup_s: float = 0.0
    wal_s: float = 0.0
    backup_info: dict = field(default_factory=dict)
    posts: str = ""
    objects: dict[str, str] = field(default_factory=dict)
    object_bytes: int = 0
    snapshot_s: float = 0.0
    ship_s: float = 0.0
    acked: dict[int, str] = field(default_factory=dict)
    writes_from: float = 0.0
    previous_switch: float = 0.0
    loss: float = 0.0
    lost_segment: str = ""
    archive_failures: int = 0


def _source_until_the_loss(s3: MotoS3, repo_path: str, memory_mb: int, sizes: Sizes, work: Path,
                           hosts: list[Host]) -> Source:
    out = Source()
    host = Host(s3, repo_path, memory_mb)
    hosts.append(host)
    host.cluster.initdb("bench")
    host.start(host.load_conf)
    started = time.monotonic()
    out.rows = _load(host, sizes.data_mb)
    out.load_s = time.monotonic() - started
    out.db_bytes = int(host.sql(f"SELECT pg_database_size('{DB}')"))
    out.posts = _posts_digest(host)
    host.cluster.stop()
    out.data_bytes = _du(host.cluster.data) - _du(host.cluster.data / "pg_wal")
    host.start(host.pg_conf)
    host.pgbackrest("stanza-create")

    writer = Writer(host, sizes.rate)
    writer.start()
    try:
        host.cluster.env.update({"SOS_PGBACKREST_CONF": str(host.conf), "SOS_METRICS_DIR": str(host.metrics)})
        started = time.monotonic()
        host.run(["sh", str(host.cluster.file("full-backup.sh", backup.full_backup_script(), 0o755))])
        out.backup_s = time.monotonic() - started
        out.backup_info = json.loads(host.pgbackrest("--output=json", "info"))[0]["backup"][-1]["info"]

        objects = work / "source-objects"
        out.objects = _make_objects(objects, sizes.objects)
        out.object_bytes = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
        sets = work / "source-backups"
        job_env = {"SOS_METRICS_DIR": str(host.metrics), "SOS_S3_URL": s3.url, "SOS_S3_REGION": REGION,
                   "AWS_ACCESS_KEY_ID": s3.key, "AWS_SECRET_ACCESS_KEY": s3.secret,
                   "CURL_CA_BUNDLE": str(s3.endpoint.ca_file)}
        started = time.monotonic()
        _sh(backup.directory_snapshot_script("minio", str(objects), str(host.metrics)), [str(sets / "minio")],
            job_env, work)
        out.snapshot_s = time.monotonic() - started
        started = time.monotonic()
        # The deployed offsite job ships `logical` and `redis` (OFFSITE_KINDS); MinIO is dev's only.
        _sh(backup.offsite_script(("minio",), str(host.metrics)), [str(sets)], job_env, work)
        out.ship_s = time.monotonic() - started

        started = time.monotonic()
        _close_segments(host, sizes.wal_segments)
        out.wal_s = time.monotonic() - started
        out.previous_switch = time.time()
        out.archive_failures = int(host.sql("SELECT failed_count FROM pg_stat_archiver", db="postgres"))

        # The loss: the instant the next segment is finished (archive_timeout), before it is archived.
        out.lost_segment = _next_finished_segment(host, backup.ARCHIVE_TIMEOUT_S + 60)
        out.loss = time.time()
        _power_off(host.postmaster())
        writer.join(30)
        out.acked = dict(writer.acked)
        out.writes_from = writer.started_at
    finally:
        writer.session.close()
    shutil.rmtree(host.cluster.root)
    shutil.rmtree(objects)
    shutil.rmtree(sets)
    return out


def run(data_mb: int = FULL.data_mb, objects: int = FULL.objects, rate: int = FULL.rate,
        wal_segments: int = FULL.wal_segments) -> tuple[str, str]:
    require_tool("pgbackrest")
    sizes = Sizes(data_mb, objects, rate, wal_segments)
    memory_mb = parse_limits(CLOUD_LIMITS["postgres"]).memory_mb
    work = Path(tempfile.mkdtemp(prefix="sos-bench-restore-"))
    # The servers run as nobody when this runs as root: they restore into folders under it.
    work.chmod(0o755)
    s3 = MotoS3(work / "s3")
    repo_path = f"/pgbackrest-{os.getpid()}"
    hosts: list[Host] = []
    try:
        src = _source_until_the_loss(s3, repo_path, memory_mb, sizes, work, hosts)

        # ---- a fresh host: its first boot, then the runbook's restore and start
        fresh = Host(s3, repo_path, memory_mb)
        hosts.append(fresh)
        fresh.cluster.initdb("first-boot")
        script = fresh.cluster.file("restore-postgres.sh", backup.restore_postgres_script(), 0o755)
        fresh.cluster.env.update({"PGDATA": str(fresh.cluster.data), "SOS_PGBACKREST_CONF": str(fresh.conf)})
        started = time.monotonic()
        fresh.run(["sh", str(script), "latest"])
        restore_s = time.monotonic() - started
        replay_s, segments = _start_and_promote(fresh, fresh.pg_conf)
        objects_dest = work / "restored-objects"
        downloaded, fetch_s, verify_s, untar_s = _restore_objects(s3, objects_dest, work / "downloads")
        objects_s = fetch_s + verify_s + untar_s
        rto = restore_s + replay_s + objects_s

        # ---- what came back
        restored = _rows(fresh)
        lost, problems = _check_writes(src.acked, restored)
        newest = max(restored, default=0)
        rpo = src.loss - float(restored[newest]) if newest else float("nan")
        lost_ages = [src.loss - float(src.acked[i]) for i in src.acked if i > newest]
        if _posts_digest(fresh) != src.posts:
            problems.append("posts differ from the source")
        restored_sums = _sums_of(objects_dest)
        if restored_sums != src.objects:
            bad = sum(1 for k, v in src.objects.items() if restored_sums.get(k) != v)
            problems.append(f"{bad} objects differ or are missing")
        shutil.rmtree(work / "downloads")
        shutil.rmtree(objects_dest)
        # (The fresh host ships the old timeline's last segment as `<segment>.partial` when it promotes.)
        lost_in_s3 = any(key.rsplit("/", 1)[-1].startswith(src.lost_segment + "-")
                         for key in _keys(s3, repo_path.strip("/") + "/archive/"))

        # ---- how much process-max, asynchronous archive-get and delta help. Each restore of the
        # comparison is started with one way of fetching the WAL, on a cluster that does not
        # archive itself (the fresh host does, as the runbook's), so the repository stays as it is.
        generated = re.search(r"^process-max=(\d+)$", fresh.conf.read_text(), re.M).group(1)  # type: ignore[union-attr]
        speed: list[tuple[str, float]] = []
        replays: list[tuple[str, int, float]] = [("the runbook's restore_command (asynchronous archive-get, guarded), "
                                                  "its start above", segments, replay_s)]
        # The others are started with pgBackRest's own restore_command (synchronous), as written by
        # a plain `pgbackrest restore`.
        for n, label, env in (
            ("1", "pgBackRest's own restore_command: synchronous archive-get", {}),
            (generated, "synchronous, again", {}),
            ("4", "pgBackRest's own, archive-async=y from the environment", {"PGBACKREST_ARCHIVE_ASYNC": "y"}),
        ):
            other = Host(s3, repo_path, memory_mb)
            hosts.append(other)
            speed.append((f"process-max {n}" + (" (generated)" if n == generated else ""),
                          _restore_into(other, other.cluster.data, f"--process-max={n}")))
            other.cluster.env.update(env)
            quiet = other.cluster.file("postgresql-quiet.conf",
                                       pg.postgresql_conf(memory_mb, extra={"archive_mode": "off"}))
            seconds, fetched = _start_and_promote(other, quiet)
            replays.append((label, fetched, seconds))
            if _rows(other) != restored:
                problems.append(f"writes differ after the replay with {label}")
            other.cluster.stop()
            shutil.rmtree(other.cluster.data)

        damage = _damage(fresh)
        started = time.monotonic()
        subprocess.run(["cp", "-a", str(fresh.cluster.data), str(work / "kept-aside")], check=True)
        kept_s = time.monotonic() - started
        shutil.rmtree(work / "kept-aside")
        delta_s = _restore_into(fresh, fresh.cluster.data, "--delta")
        _start_and_promote(fresh, fresh.pg_conf)
        if _posts_digest(fresh) != src.posts:
            problems.append("posts differ after the delta restore")
        if max(_rows(fresh), default=0) != newest:
            problems.append("writes differ after the delta restore")

        s3_backup = s3.bytes_under(repo_path.strip("/") + "/backup/")
        s3_archive = s3.bytes_under(repo_path.strip("/") + "/archive/")
        info = src.backup_info

        # ---- the report
        lines = [
            f"machine: {_machine()}; PostgreSQL 15 + pgBackRest 2.45 (Debian), moto S3 behind nginx TLS on "
            f"loopback; postgresql.conf for {memory_mb} MB",
            f"source: database {_mb(src.db_bytes)} ({src.rows:,} posts rows, loaded in {src.load_s:.0f} s), data "
            f"directory {_mb(src.data_bytes)} without pg_wal; full backup {src.backup_s:.0f} s while writing",
            f"repository: full backup {_mb(info['repository']['size'])} of {_mb(info['size'])} (zstd-3 + "
            f"aes-256-cbc); bucket: backup {s3_backup[0]:,} objects {_mb(s3_backup[1])}, WAL archive "
            f"{s3_archive[0]:,} objects {_mb(s3_archive[1])} ({sizes.wal_segments:,} segments closed and archived "
            f"after the backup in {src.wal_s:.0f} s: a quiet day of archive_timeout)",
            f"objects: {sizes.objects:,} files, {_mb(src.object_bytes)}; minio-snapshot {src.snapshot_s:.1f} s, "
            f"offsite {src.ship_s:.1f} s",
            f"writes: {len(src.acked):,} acknowledged at {sizes.rate}/s over {src.loss - src.writes_from:.0f} s; "
            f"the loss {src.loss - src.previous_switch:.1f} s after the last switch, the instant PostgreSQL "
            f"finished {src.lost_segment} ({'already' if lost_in_s3 else 'not yet'} in S3); "
            f"archive failures {src.archive_failures}",
            "",
            table(["whole-host restore", "s"], [
                (f"restore-postgres latest (pgBackRest restore, process-max {generated})", f"{restore_s:.1f}"),
                (f"start: fetch and replay {segments:,} WAL segments, promote", f"{replay_s:.1f}"),
                (f"objects: download {_mb(downloaded)} / sha256sum -c / untar "
                 f"({fetch_s:.1f} / {verify_s:.1f} / {untar_s:.1f})", f"{objects_s:.1f}"),
                (f"RTO (target {RTO_TARGET_S} s)", f"{rto:.1f}"),
            ]),
            "",
            f"RPO {rpo:.1f} s (target {RPO_TARGET_S} s; archive_timeout {backup.ARCHIVE_TIMEOUT_S} s); acknowledged "
            f"writes lost: {lost:,}, the oldest committed {max(lost_ages, default=0):.1f} s before the loss",
            "restored data: " + ("; ".join(problems) if problems else
                                 f"equal to the source up to the recovery point (posts count and row hashes, "
                                 f"every acknowledged write up to row {newest:,} with its time, "
                                 f"{len(src.objects):,} object checksums)"),
            "",
        ]
        base = speed[0][1]
        size = info["size"]
        rows = [(name, f"{s:.1f}", f"{size / s / 1024 / 1024:.0f}", f"{base / s:.2f}x") for name, s in speed]
        rows.append((f"--delta onto the damaged cluster ({damage})", f"{delta_s:.1f}",
                     f"{size / delta_s / 1024 / 1024:.0f}", f"{base / delta_s:.2f}x"))
        rows.append(("  + cp -a of it first, to keep it aside as restore-postgres does", f"{kept_s + delta_s:.1f}",
                     "", f"{base / (kept_s + delta_s):.2f}x"))
        lines.append(table(["pgBackRest restore of the same backup", "s", "MB/s", "vs process-max 1"], rows))
        lines.append("")
        lines.append(table(["start: fetch and replay the archived WAL, promote", "segments", "s", "vs the first"],
                           [(label, f"{n:,}", f"{sec:.1f}", f"{replays[0][2] / sec:.2f}x") for label, n, sec in replays]))
        lines.append(f"(asynchronous archive-get fetches ahead with process-max {generated}, the generated value)")
        synchronous = (replays[1][2] + replays[2][2]) / 2
        best = min(speed, key=lambda item: item[1])
        summary = (f"restore: {_mb(src.db_bytes)} + {sizes.objects:,} objects, RTO {rto:.0f} s (target "
                   f"{RTO_TARGET_S}), RPO {rpo:.1f} s (target {RPO_TARGET_S}), {lost:,} acknowledged writes lost, "
                   f"{'data equal' if not problems else 'DATA DIFFER'}; fastest {best[0]} {base / best[1]:.2f}x "
                   f"of process-max 1; delta {base / delta_s:.1f}x; the runbook's asynchronous archive-get "
                   f"{synchronous / replays[0][2]:.2f}x the synchronous")
        return "\n".join(lines), summary
    finally:
        for host in hosts:
            if host.cluster.data.exists():
                host.cluster.stop()
        s3.close()
        shutil.rmtree(work, ignore_errors=True)
        for host in hosts:
            shutil.rmtree(host.cluster.root, ignore_errors=True)


def _keys(s3: MotoS3, prefix: str) -> list[str]:
    return [item["Key"] for page in s3.direct.get_paginator("list_objects_v2").paginate(
        Bucket=s3.bucket, Prefix=prefix) for item in page.get("Contents", [])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="whole-host loss: restore from the offsite copies, RTO and RPO")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.data_mb} MB, {QUICK.objects} objects, {QUICK.wal_segments} WAL segments")
    parser.add_argument("--data-mb", type=int, help=f"database size (default {FULL.data_mb})")
    parser.add_argument("--objects", type=int, help=f"files in the object store (default {FULL.objects})")
    parser.add_argument("--rate", type=int, help=f"the writer's commits a second (default {FULL.rate})")
    parser.add_argument("--wal-segments", type=int,
                        help=f"segments archived between the backup and the loss (default {FULL.wal_segments})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    text, summary = run(args.data_mb or sizes.data_mb, args.objects or sizes.objects, args.rate or sizes.rate,
                        args.wal_segments if args.wal_segments is not None else sizes.wal_segments)
    print(text)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
