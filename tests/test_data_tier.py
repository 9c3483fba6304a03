"""The data tier as registered: where each store lives, what protects it, what reaches it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from components.one_shot_task import OneShotTaskArgs, docker_run_script, env_file
from offline.harness import Secret, unwrap
from settings import Limits
from testsupport.plans import CLOUD_STACKS, container_env, container_files, plan_for
from testsupport.tools import require_tool

CONTAINER = "docker:index/container:Container"



@pytest.mark.parametrize("service", ["postgres-svc", "redis-svc"])
def test_databases_live_on_the_internal_network_only_and_publish_nothing(plan, service):
    container = plan.one(CONTAINER, service)
    attached = [n["name"] for n in container.inputs["networksAdvanced"]]
    # PostgreSQL's archive_command needs a route to S3: the egress network, which nothing but
    # the backup container shares (and there containers cannot talk to each other).
    egress = [f"sos-{plan.stack}-egress"] if plan.stack != "dev" and service == "postgres-svc" else []
    assert attached == [f"sos-{plan.stack}-data", *egress]
    data = plan.one("docker:index/network:Network", "networks-data")
    assert data.inputs["internal"] is True
    assert not container.inputs.get("ports")


@pytest.mark.parametrize("volume,container", [
    ("postgres-data", "postgres-svc"), ("redis-data", "redis-svc"), ("n8n-data", "n8n-svc"),
    # Prometheus's history and Grafana's users and UI-edited dashboards (issue 18, finding 5).
    ("monitoring-prometheus-data", "monitoring-prometheus"), ("monitoring-grafana-data", "monitoring-grafana"),
])
def test_data_volumes_are_protected_and_kept_in_production(plan, volume, container):
    vol = plan.one("docker:index/volume:Volume", volume)
    production = plan.stack == "production"
    assert vol.protect is production and vol.retain_on_delete is production
    mounts = plan.one(CONTAINER, container).inputs["mounts"]
    assert any(m["source"] == vol.inputs["name"] and m["type"] == "volume" for m in mounts)


def test_postgres_container_shape(plan):
    c = plan.one(CONTAINER, "postgres-svc")
    assert c.inputs["user"] == "70:70"
    assert c.inputs["command"] == ["postgres", "-c", "config_file=/etc/sos/postgresql.conf"]
    env = container_env(c)
    assert env["POSTGRES_DB"] == "storiesofsoftware"
    assert env["POSTGRES_PASSWORD_FILE"] == "/etc/sos/secrets/postgres-password"
    assert "POSTGRES_PASSWORD" not in env, "the superuser password is read from a file"
    assert c.inputs["stopTimeout"] >= 60, "postgres needs time for a clean shutdown"
    assert c.inputs["shmSize"] >= 128
    files = container_files(plan, c)
    for path, (f, secret) in files.items():
        assert secret is path.startswith("/etc/sos/secrets/"), path
        assert (f.uid, f.gid) == (70, 70)
        assert f.mode == (0o400 if secret else 0o444)
    assert "/docker-entrypoint-initdb.d/10-storiesofsoftware.sql" in files
    assert not c.inputs.get("uploads"), "the provider's uploads go to `/`, refused on a read-only root"
    # Every directory that receives files is a config volume, mounted read-only.
    config = {m["target"] for m in c.inputs["mounts"] if m.get("readOnly")}
    assert {os.path.dirname(p) for p in files} <= config


def test_redis_container_shape(plan):
    c = plan.one(CONTAINER, "redis-svc")
    assert c.inputs["user"] == "999:1000"
    files = container_files(plan, c)
    assert not files["/etc/sos/redis.conf"][1]
    assert files["/etc/sos/secrets/redis-password"][1]
    assert files["/etc/sos/secrets/users.acl"][1]
    assert "requirepass" not in files["/etc/sos/redis.conf"][0].content


def test_connection_urls_are_secret_outputs(plan):
    assert isinstance(plan.outputs["databaseUrl"], Secret)
    assert isinstance(plan.outputs["redisUrl"], Secret)
    url = unwrap(plan.outputs["databaseUrl"])
    assert url.startswith("postgresql://sos_app:") and url.endswith("@postgres:5432/storiesofsoftware")
    assert unwrap(plan.outputs["redisUrl"]).startswith("redis://:")


# ------------------------------------------------------------------------------ dev: MinIO

def test_dev_runs_minio_with_console_on_localhost_only():
    plan = plan_for("dev")
    minio = plan.one(CONTAINER, "storage-svc")
    assert minio.inputs["ports"] == [{"internal": 9001, "external": 9001, "ip": "127.0.0.1"}]
    assert isinstance(minio.inputs["envs"], Secret), "root password in the environment is secret"
    image = plan.one("docker:index/remoteImage:RemoteImage", "storage-svc-image").inputs["name"]
    assert image.startswith("minio/minio:RELEASE.")
    for stack in CLOUD_STACKS:
        assert not [r for r in plan_for(stack).of_type(CONTAINER) if r.name.startswith("storage")]


def test_dev_buckets_are_created_by_an_idempotent_task_after_minio_is_healthy():
    plan = plan_for("dev")
    task = plan.one("command:local:Command", "storage-buckets-run")
    minio = plan.one(CONTAINER, "storage-svc")
    assert minio.urn in task.depends_on
    assert minio.inputs["wait"] is True  # created only once healthy
    script = task.inputs["create"]
    assert "mb --ignore-existing sos/content sos/images sos/backups" in script
    assert "version enable sos/backups" in script
    assert isinstance(task.inputs["stdin"], Secret)
    assert "MC_HOST_sos" in unwrap(task.inputs["stdin"])
    assert "MC_HOST" not in script


def test_one_shot_script_passes_shellcheck_and_feeds_secrets_from_stdin(tmp_path):
    tool = require_tool("shellcheck")
    args = OneShotTaskArgs(image="x:1", limits=Limits(128, 0.25, 64), network="net",
                           user="1000:1000", steps=[["one", "a b"], ["two"]], commands=None,  # type: ignore[arg-type]
                           env={"PLAIN": "yes"})
    script = docker_run_script("sha256:abc", args, "sos-dev-data")
    path = tmp_path / "task.sh"
    path.write_text("#!/bin/sh\n" + script)
    assert subprocess.run([tool, "-s", "sh", str(path)], capture_output=True).returncode == 0
    # Run it with a stand-in docker that records what it got, and fail the second step.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    fake = bin_dir / "docker"
    fake.write_text(f"""#!/bin/sh
prev=""
for a in "$@"; do
  if [ "$prev" = "--env-file" ]; then echo "envfile=$(cat "$a")" >> {log}; echo "path=$a" >> {log}; fi
  prev="$a"
done
echo "args=$*" >> {log}
case "$*" in *" two") exit 3;; esac
""")
    fake.chmod(0o755)
    result = subprocess.run(["sh", "-c", script], input=env_file({"SECRET": "s3cr=t v"}), text=True,
                            capture_output=True, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 3, "a failing step fails the task"
    text = log.read_text()
    assert text.count("envfile=SECRET=s3cr=t v") == 2
    assert "s3cr" not in "".join(line for line in text.splitlines() if line.startswith("args="))
    assert "--read-only" in text and "--cap-drop ALL" in text and "--pids-limit 64" in text
    env_path = next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("path="))
    assert not os.path.exists(env_path), "the env file is removed"


def test_env_file_refuses_newlines():
    with pytest.raises(ValueError, match="newline"):
        env_file({"K": "a\nb"})


# ------------------------------------------------------------------------------ S3

BUCKET_KINDS = ("content", "images", "backups", "logs")


def _for_bucket(plan, type_, kind):
    return plan.one(type_, f"storage-{kind}-" + {
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "ownership",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "public-access",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "encryption",
        "aws:s3/bucketVersioning:BucketVersioning": "versioning",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "lifecycle",
        "aws:s3/bucketPolicy:BucketPolicy": "tls-only",
    }[type_])


@pytest.mark.parametrize("kind", BUCKET_KINDS)
def test_every_bucket_is_private_encrypted_versioned_and_tls_only(cloud_plan, kind):
    bucket = cloud_plan.one("aws:s3/bucket:Bucket", f"storage-{kind}")
    assert bucket.protect is (cloud_plan.stack == "production")
    assert not bucket.inputs.get("acl")
    own = _for_bucket(cloud_plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", kind)
    assert own.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    block = _for_bucket(cloud_plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", kind)
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block.inputs[flag] is True
    enc = _for_bucket(cloud_plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", kind)
    assert enc.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] in ("AES256", "aws:kms")
    ver = _for_bucket(cloud_plan, "aws:s3/bucketVersioning:BucketVersioning", kind)
    assert ver.inputs["versioningConfiguration"]["status"] == "Enabled"
    life = _for_bucket(cloud_plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", kind)
    rules = {r["id"]: r for r in life.inputs["rules"]}
    assert rules["abort-incomplete-multipart"]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] > 0
    policy = json.loads(_for_bucket(cloud_plan, "aws:s3/bucketPolicy:BucketPolicy", kind).inputs["policy"])
    *grants, statement = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # Only the log bucket admits anyone, and only AWS's two log delivery services.
    services = {g["Principal"]["Service"] for g in grants if g["Effect"] == "Allow"}
    assert services == ({"logging.s3.amazonaws.com", "delivery.logs.amazonaws.com"} if kind == "logs" else set())
    for reg in (own, block, enc, ver, life):
        assert bucket.urn in reg.all_dependencies


def test_noncurrent_versions_follow_their_own_setting_and_backups_their_retention():
    from offline import harness

    plan = harness.run("staging", overrides={"noncurrentVersionDays": 3, "backupRetentionDays": 20})
    days = {kind: {r["id"]: r for r in _for_bucket(
        plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", kind).inputs["rules"]}
        ["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"]
        for kind in ("content", "images", "backups")}
    assert days == {"content": 3, "images": 3, "backups": 20}


def test_only_the_images_bucket_has_cors_for_the_site(cloud_plan):
    (cors,) = cloud_plan.of_type("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration")
    images = cloud_plan.one("aws:s3/bucket:Bucket", "storage-images")
    assert images.urn in cors.all_dependencies
    domain = {"staging": "staging.storiesofsoftware.com", "production": "storiesofsoftware.com"}[cloud_plan.stack]
    assert cors.inputs["corsRules"][0]["allowedOrigins"] == [f"https://{domain}", f"https://www.{domain}"]


def test_api_identity_can_only_get_put_delete_content_and_images(cloud_plan):
    policy_reg = cloud_plan.one("aws:iam/groupPolicy:GroupPolicy", "storage-api-policy")
    policy = json.loads(policy_reg.inputs["policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    assert sorted(statement["Resource"]) == ["arn:aws:s3:::storage-content/*", "arn:aws:s3:::storage-images/*"]
    for slot in "ab":
        key = cloud_plan.one("aws:iam/accessKey:AccessKey", f"storage-api-{slot}-key")
        assert "secret" in key.additional_secret_outputs


# ------------------------------------------------------------------------------ backup bucket

def test_backup_bucket_lifecycle_and_lock(cloud_plan):
    retention = {"staging": 14, "production": 35}[cloud_plan.stack]
    life = _for_bucket(cloud_plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "backups")
    rules = {r["id"]: r for r in life.inputs["rules"]}
    assert rules["backup-retention"]["expiration"]["days"] == retention
    transitions = rules["backup-retention"].get("transitions") or []
    if retention > 30:
        assert transitions == [{"days": 30, "storageClass": "STANDARD_IA"}]
    else:
        assert transitions == [], "Standard-IA bills 30 days minimum: no transition for short retention"
    bucket = cloud_plan.one("aws:s3/bucket:Bucket", "storage-backups")
    locks = cloud_plan.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    if cloud_plan.stack == "production":
        assert bucket.inputs["objectLockEnabled"] is True
        (lock,) = locks
        assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": retention}
        assert bucket.protect and bucket.retain_on_delete
    else:
        assert not bucket.inputs.get("objectLockEnabled") and locks == []


def test_backup_identity_adds_but_never_deletes_or_unlocks(cloud_plan):
    policy_reg = cloud_plan.one("aws:iam/groupPolicy:GroupPolicy", "storage-backup-writer-policy")
    policy = json.loads(policy_reg.inputs["policy"])
    allowed = {a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    denied = {a for s in policy["Statement"] if s["Effect"] == "Deny" for a in s["Action"]}
    assert allowed == {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"}
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention",
            "s3:BypassGovernanceRetention", "s3:PutLifecycleConfiguration"} <= denied
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert resources <= {"arn:aws:s3:::storage-backups", "arn:aws:s3:::storage-backups/*"}
    for slot in "ab":
        key = cloud_plan.one("aws:iam/accessKey:AccessKey", f"storage-backup-writer-{slot}-key")
        assert "secret" in key.additional_secret_outputs


def _admin_cannot_erase(mode: str, days: int) -> bool:
    """Under the planned lock, can an administrator who holds every permission, governance
    bypass included, delete a backup version before its retention ends? Against moto's S3."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="backups", ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(Bucket="backups", ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}})
        version = s3.put_object(Bucket="backups", Key="pgbackrest/backup.info", Body=b"x")["VersionId"]
        try:
            s3.delete_object(Bucket="backups", Key="pgbackrest/backup.info", VersionId=version,
                             BypassGovernanceRetention=True)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied", exc.response
            return True
        return False


def test_production_backups_cannot_be_erased_even_by_an_administrator():
    """Finding 3 of issue 18: the planned lock mode is one that binds administrators too; the
    same check passes for governance mode's bypass, so it can tell the two apart."""
    plan = plan_for("production")
    (lock,) = plan.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    retention = lock.inputs["rule"]["defaultRetention"]
    assert _admin_cannot_erase(retention["mode"], retention["days"])
    assert not _admin_cannot_erase("GOVERNANCE", retention["days"])


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_a_reloadable_setting_changes_the_settings_release_and_nothing_else(stack, monkeypatch):
    """archive_timeout (a reload applies it) moved: of the whole graph only the release command's
    stdin differs, so `pulumi up` reloads PostgreSQL and replaces nothing (in production a
    replacement of its container would stop at `protect`). Shown able to fail: the same change
    as a restart-only setting (archive_mode) changes the container's files."""
    from configs import backup
    from offline import harness

    def registered(plan: harness.Plan) -> dict[str, str]:
        return {r.urn: json.dumps(unwrap(r.inputs), sort_keys=True, default=str) for r in plan.resources}

    base = registered(harness.run(stack))
    monkeypatch.setattr(backup, "ARCHIVE_TIMEOUT_S", 31)
    moved = registered(harness.run(stack))
    assert set(moved) == set(base)
    assert sorted(urn.rsplit("::", 1)[1] for urn in base if base[urn] != moved[urn]) == ["postgres-settings-release"]

    settings = backup.archive_settings
    monkeypatch.setattr(backup, "archive_settings", lambda *a: {**settings(*a), "archive_mode": "always"})
    restart = registered(harness.run(stack))
    assert "postgres-svc-cfg-etc-sos-write" in {urn.rsplit("::", 1)[1] for urn in base if base[urn] != restart.get(urn)}
