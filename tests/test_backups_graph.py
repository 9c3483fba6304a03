"""Backups as registered on every stack: the PostgreSQL image with pgBackRest, continuous
archiving in the deployed postgresql.conf, the backup container's mounts, identity and schedule,
and the routes out (cloud) that only archiving and shipping get."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components.postgres import IMAGE_CONTEXT, POSIX_REPO_DIR, SOCKET_DIR
from configs import backup
from configs import postgres as pg
from offline.harness import Secret
from settings import DEFAULT_IMAGES
from testsupport.plans import STACKS, container_env, plan_for
from testsupport.tools import ROOT, require_tool

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"


def _mounts(container) -> dict[str, dict]:
    return {m["target"]: m for m in container.inputs["mounts"]}


def _backups_bucket(plan) -> str:
    """The bucket's name as the mocks report it: AWS picks one from `bucket_prefix`, and
    offline/canned.py answers with the resource name."""
    bucket = plan.one("aws:s3/bucket:Bucket", "storage-backups")
    assert bucket.inputs["bucketPrefix"] == f"sos-{plan.stack}-backups-"
    return "storage-backups"


def _volume_name(plan, resource: str) -> str:
    return plan.one(VOLUME, resource).inputs["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_postgres_runs_an_image_built_from_the_pinned_one_with_pgbackrest(stack):
    plan = plan_for(stack)
    postgres, backups = plan.one(CONTAINER, "postgres-svc"), plan.one(CONTAINER, "backups-svc")
    (image,) = [r for r in plan.of_type(IMAGE) if r.urn in postgres.property_dependencies["image"]]
    assert image.inputs["name"] == f"sos-{stack}/postgres-pgbackrest:16.10-alpine"
    build = image.inputs["build"]
    # Relative to the project, so a checkout elsewhere plans the same image (context forces a new one).
    assert not Path(build["context"]).is_absolute() and ROOT / build["context"] == IMAGE_CONTEXT
    # Built by the engine the provider talks to (buildx would use the CLI's current context).
    assert build["useLegacyBuilder"] is True
    assert build["buildArgs"] == {"BASE_IMAGE": DEFAULT_IMAGES["postgres"]}
    assert build["pullParent"] is True
    # A changed Dockerfile changes the trigger, so the image is rebuilt.
    assert re.fullmatch(r"[0-9a-f]{64}", image.inputs["triggers"]["context"])
    # The backup container runs the very same image (one build, not two).
    assert backups.property_dependencies["image"] == postgres.property_dependencies["image"]
    assert len([r for r in plan.of_type(IMAGE) if "pgbackrest" in r.inputs["name"]]) == 1


def test_dockerfile_passes_hadolint_and_defaults_to_the_pinned_base():
    hadolint = require_tool("hadolint")
    dockerfile = IMAGE_CONTEXT / "Dockerfile"
    result = subprocess.run([hadolint, "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert f"ARG BASE_IMAGE={DEFAULT_IMAGES['postgres']}\n" in text
    # Debian's pgBackRest (2.45) does not know PostgreSQL 16: the build refuses anything older.
    assert '"pgbackrest>=${PGBACKREST_MIN}"' in text and "ARG PGBACKREST_MIN=2.47" in text
    # Directories the volumes inherit, owned by the postgres user (uid 70 in the image).
    for directory in (POSIX_REPO_DIR, backup.BACKUP_DIR, backup.METRICS_DIR):
        assert directory in text


def test_deployed_postgresql_conf_archives_every_wal_segment(plan_files):
    for stack in STACKS:
        # archive_mode takes a restart; the rest is the settings release a reload applies.
        assert "archive_mode = on\n" in (plan_files[stack] / "postgres-svc" / "etc" / "sos" / "postgresql.conf").read_text()
        conf = (plan_files[stack] / "postgres-settings-release" / pg.SETTINGS_FILE).read_text()
        assert f"archive_command = 'pgbackrest --config={backup.CONF_PATH} --stanza=main archive-push %p'" in conf
        assert f"archive_timeout = {backup.ARCHIVE_TIMEOUT_S}s\n" in conf


@pytest.mark.parametrize("stack", STACKS)
def test_both_containers_get_the_same_pgbackrest_conf_for_the_stack(plan_files, stack):
    confs = [(plan_files[stack] / svc / "etc" / "sos" / "pgbackrest" / "pgbackrest.conf").read_text()
             for svc in ("postgres-svc", "backups-svc")]
    assert confs[0] == confs[1]
    conf = confs[0]
    assert f"pg1-path={pg.PGDATA}\n" in conf and f"pg1-socket-path={SOCKET_DIR}\n" in conf
    if stack == "dev":
        assert "repo1-type=posix\n" in conf and f"repo1-path={POSIX_REPO_DIR}\n" in conf
    else:
        bucket = _backups_bucket(plan_for(stack))
        assert "repo1-type=s3\n" in conf and f"repo1-s3-bucket={bucket}\n" in conf
        assert "repo1-s3-endpoint=s3.us-east-1.amazonaws.com\n" in conf
        assert "repo1-storage-verify-tls=y\n" in conf
    assert "repo1-cipher-type=aes-256-cbc\n" in conf and "cipher-pass" not in conf


@pytest.mark.parametrize("stack", STACKS)
def test_backup_container_sees_what_it_backs_up_read_only(stack):
    plan = plan_for(stack)
    postgres, backups = plan.one(CONTAINER, "postgres-svc"), plan.one(CONTAINER, "backups-svc")
    pm, bm = _mounts(postgres), _mounts(backups)
    assert bm[pg.DATA_DIR]["source"] == pm[pg.DATA_DIR]["source"] and bm[pg.DATA_DIR]["readOnly"] is True
    assert bm[SOCKET_DIR]["source"] == pm[SOCKET_DIR]["source"] == _volume_name(plan, "postgres-socket")
    assert bm["/sources/redis"]["source"] == _volume_name(plan, "redis-data")
    assert bm["/sources/redis"]["readOnly"] is True
    assert bm[backup.BACKUP_DIR]["source"] == _volume_name(plan, "backups-sets")
    assert bm[backup.METRICS_DIR]["source"] == _volume_name(plan, "backups-metrics")
    assert backups.inputs["user"] == postgres.inputs["user"] == "70:70"
    if stack == "dev":
        assert bm[POSIX_REPO_DIR]["source"] == pm[POSIX_REPO_DIR]["source"] == _volume_name(plan, "postgres-pgbackrest-repo")
        assert bm["/sources/minio"]["source"] == _volume_name(plan, "storage-data")
        assert bm["/sources/minio"]["readOnly"] is True
    else:
        assert POSIX_REPO_DIR not in bm and "/sources/minio" not in bm
    # Started after the database is healthy, and after Redis.
    assert plan.depends_transitively(backups.urn, postgres.urn)
    assert plan.depends_transitively(backups.urn, plan.one(CONTAINER, "redis-svc").urn)


@pytest.mark.parametrize("stack", STACKS)
def test_backup_container_runs_the_scheduler_with_every_job(plan_files, stack):
    backups = plan_for(stack).one(CONTAINER, "backups-svc")
    assert backups.inputs["entrypoints"] == ["/bin/sh"]
    assert backups.inputs["command"] == [f"{backup.SCRIPTS_DIR}/scheduler"]
    scheduler = (plan_files[stack] / "backups-svc" / "etc" / "sos" / "backup" / "scheduler").read_text()
    jobs = dict(re.findall(r"^  run_if_due (\S+) (\d+) \d+ ", scheduler, re.M))
    expected = {"pgbackrest-full": "86400", "logical": "86400", "redis": "3600", "offsite": "900"}
    if stack == "dev":
        expected["minio"] = "86400"
    assert jobs == expected
    scripts = plan_files[stack] / "backups-svc" / "etc" / "sos" / "backup"
    for script in re.findall(rf"sh {backup.SCRIPTS_DIR}/(\S+)", scheduler):
        assert (scripts / script).exists(), script
    # The runbook's restore scripts are on the host too, next to the jobs.
    assert (scripts / "restore-postgres").exists() and (scripts / "restore-redis").exists()
    assert backups.inputs["healthcheck"]["tests"][0] == "CMD-SHELL"
    assert "heartbeat" in backups.inputs["healthcheck"]["tests"][1]


@pytest.mark.parametrize("stack", STACKS)
def test_backup_credentials_are_the_write_only_identity_and_stay_secret(stack):
    plan = plan_for(stack)
    backups, postgres = plan.one(CONTAINER, "backups-svc"), plan.one(CONTAINER, "postgres-svc")
    for container in (backups, postgres):
        assert isinstance(container.inputs["envs"], Secret)
        assert plan.one("random:index/randomPassword:RandomPassword", "secrets-backupCipher").urn in \
            container.property_dependencies["envs"]
        assert "PGBACKREST_REPO1_CIPHER_PASS" in container_env(container)
    env = container_env(backups)
    if stack == "dev":
        # dev ships to MinIO's backups bucket over the data network.
        assert env["SOS_S3_URL"] == "http://minio:9000/backups"
        assert "PGBACKREST_REPO1_S3_KEY" not in container_env(postgres)
        return
    bucket = _backups_bucket(plan)
    assert env["SOS_S3_URL"] == f"https://{bucket}.s3.us-east-1.amazonaws.com"
    # The key pair is a file on a volume of its own, written by a one-shot task from the backup
    # writer's active key (issue 18: a rotation replaces neither PostgreSQL nor the backups).
    task = plan.one("command:remote:Command", "postgres-s3-credentials-writer-run")
    writer_keys = {plan.one("aws:iam/accessKey:AccessKey", f"storage-backup-writer-{s}-key").urn for s in "ab"}
    api_keys = {plan.one("aws:iam/accessKey:AccessKey", f"storage-api-{s}-key").urn for s in "ab"}
    assert isinstance(task.inputs["stdin"], Secret)
    assert writer_keys & set(task.property_dependencies["stdin"]) and not api_keys & set(task.property_dependencies["stdin"])
    volume = plan.one("docker:index/volume:Volume", "postgres-s3-credentials").inputs["name"]
    for container in (backups, postgres):
        keys = set(container.property_dependencies.get("envs", []))
        assert not (writer_keys | api_keys) & keys, f"{container.name} carries a key in its environment"
        assert not {"PGBACKREST_REPO1_S3_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(container_env(container))
        assert container_env(container)["PGBACKREST_CONFIG_INCLUDE_PATH"] == "/etc/sos/pgbackrest/conf.d"
        assert {"source": volume, "target": "/etc/sos/pgbackrest/conf.d", "type": "volume", "readOnly": True} in \
            container.inputs["mounts"]
        assert task.urn in container.depends_on


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_only_archiving_and_shipping_get_the_route_out(stack):
    plan = plan_for(stack)
    egress = f"sos-{stack}-egress"
    on_egress = sorted(c.name for c in plan.of_type(CONTAINER)
                       if egress in [n["name"] for n in c.inputs["networksAdvanced"]])
    assert on_egress == ["backups-svc", "postgres-svc"]


def test_backup_cipher_is_protected_in_production():
    cipher = plan_for("production").one("random:index/randomPassword:RandomPassword", "secrets-backupCipher")
    assert cipher.protect is True
    assert cipher.inputs["length"] >= 48
