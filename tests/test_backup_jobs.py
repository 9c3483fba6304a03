"""The backup container's jobs, run the way the container runs them: BusyBox's sh and applets
(what the Alpine-based image has) plus the few programs the image adds (curl, openssl, the
PostgreSQL client tools), against real Redis, real PostgreSQL and an S3 server (moto) that checks
signatures and the backup identity's IAM policy."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from components.object_storage import backup_writer_policy
from configs import backup
from configs import redis as rc
from tests.test_redis_server import PASSWORD as REDIS_PASSWORD
from tests.test_redis_server import RedisServer, plan_conf
from testsupport.servers import free_port, port_open, wait_for
from testsupport.tools import ROOT, require_tool

BUCKET = "sos-test-backups"
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def alpine_path(tmp_path_factory) -> Path:
    """A PATH holding only BusyBox's applets and the programs the backup image installs."""
    busybox = require_tool("busybox")
    directory = tmp_path_factory.mktemp("alpine-bin")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        (directory / applet).symlink_to(busybox)
    for program in ("curl", "openssl"):
        target = directory / program
        target.unlink(missing_ok=True)
        target.symlink_to(require_tool(program))
    return directory


def run_script(alpine_path: Path, text: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    script = alpine_path.parent / f"script-{time.monotonic_ns()}.sh"
    script.write_text(text)
    return subprocess.run([str(alpine_path / "sh"), str(script), *args], capture_output=True, text=True,
                          timeout=timeout, env={"PATH": str(alpine_path), **(env or {})})


def metric(metrics: Path, kind: str, name: str) -> int:
    text = (metrics / f"{kind}.prom").read_text()
    return int(text.split(f'{name}{{kind="{kind}"}} ')[1].split()[0])


# --- the scheduler ---------------------------------------------------------------------------

def test_scheduler_runs_due_jobs_retries_failures_and_stops_on_term(alpine_path, tmp_path):
    state, log = tmp_path / "state", tmp_path / "log"
    jobs = (
        backup.Job("often", every_s=2, retry_s=1, command=("sh", "-c", f"echo often >> {log}")),
        backup.Job("broken", every_s=1, retry_s=3, command=("sh", "-c", f"echo broken >> {log}; exit 7")),
        backup.Job("daily", every_s=86400, retry_s=60, command=("sh", "-c", f"echo daily >> {log}")),
    )
    script = tmp_path / "scheduler.sh"
    script.write_text(backup.scheduler_script(jobs))
    proc = subprocess.Popen([str(alpine_path / "sh"), str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"PATH": str(alpine_path), "SOS_STATE_DIR": str(state),
                                            "SOS_TICK_SECONDS": "1"})
    time.sleep(6.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0, "TERM ends the scheduler cleanly"
    runs = log.read_text().split()
    # Due every 2 s over ~6.5 s: at 0, 2, 4, 6 (a tick may slip by one).
    assert 3 <= runs.count("often") <= 4, runs
    # Failing every time: retried after 3 s, not at every 1 s tick.
    assert 2 <= runs.count("broken") <= 3, runs
    assert runs.count("daily") == 1
    assert "job broken: FAILED with status 7" in err
    assert not (state / "broken.ok").exists() and (state / "often.ok").exists()
    assert abs(int((state / "heartbeat").read_text()) - time.time()) < 5

    # A restart does not repeat what already succeeded today.
    log.unlink()
    proc = subprocess.Popen([str(alpine_path / "sh"), str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"PATH": str(alpine_path), "SOS_STATE_DIR": str(state),
                                            "SOS_TICK_SECONDS": "1"})
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=5)
    assert "daily" not in log.read_text().split()


# --- Redis -----------------------------------------------------------------------------------

@pytest.fixture
def redis_source(plan_files, tmp_path):
    data = tmp_path / "redis-data"
    data.mkdir()
    server = RedisServer(data, plan_conf(plan_files, "production"), REDIS_PASSWORD)
    server.start()
    yield server
    if server.proc:
        server.stop()


def test_redis_snapshot_restores_into_a_fresh_server_with_the_generated_conf(
        alpine_path, redis_source, plan_files, tmp_path):
    for i in range(200):
        redis_source.cli_run("set", f"key:{i}", f"value-{i}", password=REDIS_PASSWORD)
    assert redis_source.cli_run("save", password=REDIS_PASSWORD).stdout.strip() == "OK"
    out, metrics = tmp_path / "out", tmp_path / "metrics"
    out.mkdir()
    metrics.mkdir()
    result = run_script(alpine_path, backup.redis_snapshot_script(), str(out),
                        env={"SOS_REDIS_DIR": str(redis_source.dir), "SOS_METRICS_DIR": str(metrics)})
    assert result.returncode == 0, result.stderr
    published = Path(result.stdout.strip())
    assert published.parent == out and sorted(p.name for p in published.iterdir()) == ["SHA256SUMS", "dump.rdb"]
    assert metric(metrics, "redis", "sos_backup_last_run_ok") == 1
    assert metric(metrics, "redis", "sos_backup_last_size_bytes") > 0
    lint = subprocess.run([require_tool("promtool"), "check", "metrics"], input=(metrics / "redis.prom").read_text(),
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stderr

    check = subprocess.run([require_tool("redis-check-rdb"), str(published / "dump.rdb")], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stdout

    # Copying dump.rdb alone is not a restore: with AOF on and no AOF yet, Redis starts empty.
    naive_dir = tmp_path / "naive"
    naive_dir.mkdir()
    shutil.copy(published / "dump.rdb", naive_dir / "dump.rdb")
    naive = RedisServer(naive_dir, plan_conf(plan_files, "production"), REDIS_PASSWORD)
    naive.start()
    try:
        assert naive.cli_run("dbsize", password=REDIS_PASSWORD).stdout.strip() == "0"
    finally:
        naive.stop()

    # The runbook's restore, onto a data directory that already holds something.
    fresh_dir = tmp_path / "fresh"
    fresh_dir.mkdir()
    (fresh_dir / "stale").write_text("old")
    restored = _restore_redis(published, fresh_dir)
    assert restored.returncode == 0, restored.stderr
    assert "restored 200 keys" in restored.stdout
    assert list(fresh_dir.glob("before-restore-*/stale")), "the previous data is kept on the volume"
    fresh = RedisServer(fresh_dir, plan_conf(plan_files, "production"), REDIS_PASSWORD)
    fresh.start()
    try:
        assert fresh.cli_run("dbsize", password=REDIS_PASSWORD).stdout.strip() == "200"
        assert fresh.cli_run("get", "key:199", password=REDIS_PASSWORD).stdout.strip() == "value-199"
    finally:
        fresh.stop()
    # And the data survives the restored server's own restart (now from its AOF).
    fresh.start()
    try:
        assert fresh.cli_run("dbsize", password=REDIS_PASSWORD).stdout.strip() == "200"
    finally:
        fresh.stop()


def _restore_redis(set_dir: Path, data: Path) -> subprocess.CompletedProcess:
    script = data.parent / "restore-redis.sh"
    script.write_text(backup.restore_redis_script())
    tools = Path(require_tool("redis-server")).parent
    return subprocess.run(["sh", str(script), str(set_dir), str(data)], capture_output=True, text=True,
                          timeout=120, env={"PATH": f"{tools}:/usr/bin:/bin", "TMPDIR": str(data.parent)})


@pytest.mark.parametrize("problem", ["missing", "not-rdb"])
def test_redis_snapshot_failure_publishes_nothing_and_says_so(alpine_path, tmp_path, problem):
    source, out, metrics = tmp_path / "src", tmp_path / "out", tmp_path / "metrics"
    for d in (source, out, metrics):
        d.mkdir()
    if problem == "not-rdb":
        (source / "dump.rdb").write_text("")
    result = run_script(alpine_path, backup.redis_snapshot_script(), str(out),
                        env={"SOS_REDIS_DIR": str(source), "SOS_METRICS_DIR": str(metrics)})
    assert result.returncode != 0
    assert "redis backup failed" in result.stderr
    assert list(out.iterdir()) == []
    assert metric(metrics, "redis", "sos_backup_last_run_ok") == 0


def test_only_the_newest_local_sets_are_kept(alpine_path, tmp_path):
    source, out, metrics = tmp_path / "src", tmp_path / "out", tmp_path / "metrics"
    for d in (source, out, metrics):
        d.mkdir()
    (source / "file").write_text("data")
    older = ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]
    for name in older:
        (out / name).mkdir()
    (out / "notes").mkdir()  # not a set: left alone
    script = backup.directory_snapshot_script("minio", str(source))
    result = run_script(alpine_path, script, str(out), env={"SOS_METRICS_DIR": str(metrics)})
    assert result.returncode == 0, result.stderr
    kept = sorted(p.name for p in out.iterdir())
    assert len(kept) == backup.LOCAL_SETS_KEPT + 1 and "notes" in kept and older[-1] in kept
    newest = out / sorted(k for k in kept if k != "notes")[-1]
    listing = subprocess.run(["tar", "-tf", str(newest / "minio.tar")], capture_output=True, text=True).stdout
    assert "./file" in listing.split()


# --- shipping sets to the bucket ---------------------------------------------------------------

class Moto:
    """moto in server mode with IAM enforcement: requests must be signed by a known key and are
    judged against the caller's policy, as S3 judges them."""

    def __init__(self, work: Path) -> None:
        self.binary = require_tool("moto_server")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "moto.log"
        self.proc: subprocess.Popen | None = None
        self.start()
        import boto3

        bootstrap = boto3.client("iam", endpoint_url=self.url, region_name=REGION,
                                 aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        # The first three calls are unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT): an admin.
        bootstrap.create_user(UserName="admin")
        bootstrap.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = bootstrap.create_access_key(UserName="admin")["AccessKey"]
        self.admin = {"endpoint_url": self.url, "region_name": REGION, "aws_access_key_id": key["AccessKeyId"],
                      "aws_secret_access_key": key["SecretAccessKey"]}
        s3 = boto3.client("s3", **self.admin)
        # The production bucket's shape: versioned, Object Lock in compliance mode.
        s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object_lock_configuration(Bucket=BUCKET, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 35}}})
        iam = boto3.client("iam", **self.admin)
        iam.create_user(UserName="backup-writer")
        iam.put_user_policy(UserName="backup-writer", PolicyName="writer",
                            PolicyDocument=backup_writer_policy(f"arn:aws:s3:::{BUCKET}"))
        writer = iam.create_access_key(UserName="backup-writer")["AccessKey"]
        self.writer = (writer["AccessKeyId"], writer["SecretAccessKey"])

    def _up(self) -> bool:
        return port_open(self.port)

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log.open("a"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"})
        assert wait_for(self._up, 20), self.log.read_text()

    def client(self, as_writer: bool = False):
        import boto3

        if as_writer:
            return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                                aws_access_key_id=self.writer[0], aws_secret_access_key=self.writer[1])
        return boto3.client("s3", **self.admin)

    def env(self, secret: str | None = None) -> dict[str, str]:
        return {"SOS_S3_URL": f"{self.url}/{BUCKET}", "SOS_S3_REGION": REGION,
                "AWS_ACCESS_KEY_ID": self.writer[0], "AWS_SECRET_ACCESS_KEY": secret or self.writer[1]}

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = Moto(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


def _make_sets(alpine_path: Path, root: Path, metrics: Path, count: int = 2) -> list[Path]:
    sets = []
    source = root.parent / "redis-src"
    source.mkdir(exist_ok=True)
    for i in range(count):
        (source / "dump.rdb").write_bytes(b"REDIS0011" + os.urandom(4096 * (i + 1)))
        result = run_script(alpine_path, backup.redis_snapshot_script(), str(root / "redis"),
                            env={"SOS_REDIS_DIR": str(source), "SOS_METRICS_DIR": str(metrics)})
        assert result.returncode == 0, result.stderr
        sets.append(Path(result.stdout.strip()))
        time.sleep(1.05)  # set names are stamped to the second
    return sets


def test_offsite_ships_complete_sets_once_with_the_backup_identity(alpine_path, moto, tmp_path):
    root, metrics = tmp_path / "backups", tmp_path / "metrics"
    (root / "redis").mkdir(parents=True)
    metrics.mkdir()
    sets = _make_sets(alpine_path, root, metrics)
    prefix = f"run-{time.monotonic_ns()}"
    env = {**moto.env(), "SOS_METRICS_DIR": str(metrics), "SOS_S3_PREFIX": prefix}
    result = run_script(alpine_path, backup.offsite_script(("logical", "redis")), str(root), env=env)
    assert result.returncode == 0, result.stderr
    assert "offsite: 2 set(s)" in result.stdout
    s3 = moto.client()
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"])
    assert listed == sorted(f"{prefix}/redis/{s.name}/{f}" for s in sets for f in ("SHA256SUMS", "dump.rdb"))
    for s in sets:
        body = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/redis/{s.name}/dump.rdb")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256((s / "dump.rdb").read_bytes()).hexdigest()
    assert metric(metrics, "offsite", "sos_backup_last_run_ok") == 1

    # Nothing new: nothing shipped again.
    again = run_script(alpine_path, backup.offsite_script(("logical", "redis")), str(root), env=env)
    assert again.returncode == 0 and "offsite: 0 set(s)" in again.stdout

    # The identity the host holds cannot delete what it wrote.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="AccessDenied"):
        moto.client(as_writer=True).delete_object(Bucket=BUCKET, Key=listed[0])


def test_offsite_with_a_wrong_key_fails_and_retries_the_set_later(alpine_path, moto, tmp_path):
    root, metrics = tmp_path / "backups", tmp_path / "metrics"
    (root / "redis").mkdir(parents=True)
    metrics.mkdir()
    (one,) = _make_sets(alpine_path, root, metrics, count=1)
    env = {**moto.env(secret="not-the-key"), "SOS_METRICS_DIR": str(metrics), "SOS_S3_PREFIX": "wrong-key"}
    result = run_script(alpine_path, backup.offsite_script(("redis",)), str(root), env=env)
    assert result.returncode != 0
    assert "upload of redis/" in result.stderr
    assert metric(metrics, "offsite", "sos_backup_last_run_ok") == 0
    assert not (one / ".shipped").exists(), "a set that did not reach the bucket is tried again"
    assert "Contents" not in moto.client().list_objects_v2(Bucket=BUCKET, Prefix="wrong-key")


def test_offsite_with_the_endpoint_down_fails_loudly(alpine_path, moto, tmp_path):
    root, metrics = tmp_path / "backups", tmp_path / "metrics"
    (root / "redis").mkdir(parents=True)
    metrics.mkdir()
    (one,) = _make_sets(alpine_path, root, metrics, count=1)
    env = {**moto.env(), "SOS_METRICS_DIR": str(metrics), "SOS_S3_PREFIX": "down",
           "SOS_S3_URL": f"http://127.0.0.1:{free_port()}/{BUCKET}"}
    result = run_script(alpine_path, backup.offsite_script(("redis",)), str(root), env=env, timeout=120)
    assert result.returncode != 0
    assert metric(metrics, "offsite", "sos_backup_last_run_ok") == 0
    assert not (one / ".shipped").exists()


def test_offsite_refuses_a_set_that_no_longer_matches_its_sums(alpine_path, moto, tmp_path):
    root, metrics = tmp_path / "backups", tmp_path / "metrics"
    (root / "redis").mkdir(parents=True)
    metrics.mkdir()
    (one,) = _make_sets(alpine_path, root, metrics, count=1)
    with (one / "dump.rdb").open("ab") as f:
        f.write(b"bit rot")
    env = {**moto.env(), "SOS_METRICS_DIR": str(metrics), "SOS_S3_PREFIX": "rot"}
    result = run_script(alpine_path, backup.offsite_script(("redis",)), str(root), env=env)
    assert result.returncode != 0 and "does not match its SHA256SUMS" in result.stderr
    assert "Contents" not in moto.client().list_objects_v2(Bucket=BUCKET, Prefix="rot")


# --- every script passes shellcheck ------------------------------------------------------------

SCRIPTS = {
    "full-backup": backup.full_backup_script(),
    "logical-dump": backup.logical_dump_script(),
    "redis-snapshot": backup.redis_snapshot_script(),
    "minio-snapshot": backup.directory_snapshot_script("minio", "/sources/minio"),
    "offsite": backup.offsite_script(("logical", "redis")),
    "scheduler": backup.scheduler_script((backup.Job("a", 60, 30, ("/bin/true",)),)),
    "restore-postgres": backup.restore_postgres_script(),
    "restore-redis": backup.restore_redis_script(),
    "write-s3-credentials": backup.write_s3_credentials_script(),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_passes_shellcheck(name, tmp_path):
    tool = require_tool("shellcheck")
    path = tmp_path / f"{name}.sh"
    path.write_text(SCRIPTS[name])
    result = subprocess.run([tool, "-s", "sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("source", sorted(p.name for p in backup.SCRIPT_SOURCES.glob("*.sh")))
def test_script_source_file_passes_shellcheck(source):
    """Each part as the file it is in the repository (its own shellcheck directives apply)."""
    tool = require_tool("shellcheck")
    result = subprocess.run([tool, str(backup.SCRIPT_SOURCES / source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_script_source_is_shipped_and_no_shell_lives_in_python():
    used = {part for text in SCRIPTS.values() for part in re.findall(r"backup_scripts/\{([^}]*)\}", text)[0].split(",")}
    assert used == {p.name for p in backup.SCRIPT_SOURCES.glob("*.sh")}
    python = (ROOT / "configs" / "backup.py").read_text()
    # No shell program text left in Python: no line that closes a shell block.
    assert not re.search(r"^\s*(fi|done|esac)\s*$", python, re.M)


def test_the_shell_metric_text_is_the_python_one(alpine_path, tmp_path):
    """lib-metrics.sh's metric_text and metric_lines() (the monitoring tests' fixture) agree."""
    script = f". {backup.SCRIPT_SOURCES / 'lib-metrics.sh'}\nSOS_KIND=logical\nmetric_text 1700000000 2048 1\n"
    result = run_script(alpine_path, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == backup.metric_lines("logical", 1700000000, 2048, True)


def test_redis_conf_keeps_writing_the_rdb_the_snapshot_copies():
    # The snapshot copies dump.rdb: the conf must keep RDB saves on alongside the AOF.
    lines = rc.redis_conf(512).splitlines()
    assert {"save 900 1", "save 300 10", "save 60 10000"} <= set(lines)
    assert not [line for line in lines if line.startswith("dbfilename") and line != "dbfilename dump.rdb"]


def _write_credentials(alpine_path: Path, directory: Path, key_id: str, secret: str) -> Path:
    """The one-shot task's script, as the task runs it (owner: whoever runs the test)."""
    owner = f"{os.getuid()}:{os.getgid()}"
    result = run_script(alpine_path, backup.write_s3_credentials_script(str(directory), owner),
                        env={"SOS_S3_KEY": key_id, "SOS_S3_KEY_SECRET": secret})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and secret not in result.stderr
    return directory / "s3-credentials.conf"


def test_offsite_reads_the_rotated_key_from_pgbackrest_s_file(alpine_path, moto, tmp_path):
    """Issue 18: on S3 the backup container has no key in its environment; the offsite upload
    reads the key pair from the file the credentials task rewrites, at every run."""
    root, metrics, creds = tmp_path / "backups", tmp_path / "metrics", tmp_path / "conf.d"
    (root / "redis").mkdir(parents=True)
    metrics.mkdir()
    creds.mkdir()
    (one,) = _make_sets(alpine_path, root, metrics, count=1)
    env = {key: value for key, value in moto.env().items() if not key.startswith("AWS_")}
    env.update(SOS_METRICS_DIR=str(metrics), SOS_S3_PREFIX="from-file",
               SOS_S3_CREDENTIALS=str(creds / "s3-credentials.conf"))
    # A wrong secret in the file fails the upload: the file is what is used.
    path = _write_credentials(alpine_path, creds, moto.writer[0], "not-the-key")
    assert run_script(alpine_path, backup.offsite_script(("redis",)), str(root), env=env).returncode != 0
    # The task writes the right pair (the rotation): the next run ships, without a restart.
    _write_credentials(alpine_path, creds, *moto.writer)
    assert oct(path.stat().st_mode & 0o777) == "0o400"
    assert path.read_text() == f"[global]\nrepo1-s3-key={moto.writer[0]}\nrepo1-s3-key-secret={moto.writer[1]}\n"
    assert sorted(p.name for p in creds.iterdir()) == ["s3-credentials.conf"], "no temporary file left"
    result = run_script(alpine_path, backup.offsite_script(("redis",)), str(root), env=env)
    assert result.returncode == 0, result.stderr
    assert (one / ".shipped").exists()
