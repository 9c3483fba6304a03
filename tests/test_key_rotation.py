"""Issue 18, finding 4: the static access keys rotate on a schedule, with an overlap, without a
gap for their users, and an alert fires when one outlives its period.

- the schedule (configs/key_rotation.py) against days counted here;
- the registered graph: groups hold the policies, two users and keys per identity, the newer key
  in use;
- a rotation replayed in the engine's order (testsupport/rollout.plan_steps over the plans of two
  days): the new key exists before anything moves to it, the old one goes last, and neither
  PostgreSQL nor the backup container is touched;
- the real pgBackRest against an S3 server (moto behind TLS): after the task's script rewrites the
  key file, the next run signs with the new key, nothing restarted (the offsite upload reading
  the same file is checked against moto's IAM in test_backup_jobs);
- promtool over the rendered rules: the key-age alert fires on the day after the period.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from configs import backup, key_rotation
from configs import monitoring as mon
from offline import canned, harness
from settings import ROTATION_DATE_VARIABLE
from testsupport.plans import container_env
from testsupport.rollout import plan_steps
from testsupport.servers import moto_server
from testsupport.tools import require_tool

KEY = "aws:iam/accessKey:AccessKey"
CONTAINER = "docker:index/container:Container"
IDENTITIES = ("storage-api", "storage-backup-writer")


# ------------------------------------------------------------------------------ the schedule

@pytest.mark.parametrize("period", [2, 7, 90])
def test_every_key_is_replaced_within_its_period_after_idling_half_of_it(period):
    """Day by day over three periods: slot a is due on days ≡ 0, slot b on days ≡ period//2
    (mod period), counted from the schedule's origin; the key in use is the newer one."""
    born = {"a": None, "b": None}
    previous = None
    for day in range(-period, 3 * period):
        today = key_rotation.ORIGIN + dt.timedelta(days=day)
        due = {"a": day % period == 0, "b": day % period == period // 2}
        gens = key_rotation.generations(today, period)
        if previous is not None:
            changed = {slot for slot in gens if gens[slot] != previous[0][slot]}
            assert changed == {slot for slot, d in due.items() if d}, today
            for slot in changed:
                # The key replaced today was not the one in use yesterday.
                assert previous[1] != slot, (today, slot)
                born[slot] = day
        active = key_rotation.active_slot(today, period)
        if all(born.values()):
            other = "b" if active == "a" else "a"
            assert born[active] >= born[other], "the containers use the newer key"
            assert all(day - b < period for b in born.values()), "no key older than its period"
        previous = (gens, active)
    slot, when = key_rotation.next_rotation(key_rotation.ORIGIN, period)
    assert (slot, when) == ("b", key_rotation.ORIGIN + dt.timedelta(days=period // 2))


def test_a_period_of_one_day_is_refused():
    with pytest.raises(ValueError, match="at least two days"):
        key_rotation.generations(dt.date(2026, 11, 30), 1)


@pytest.mark.parametrize("value,ok", [(90, True), (2, True), (91, False), (1, False)])
def test_rotation_period_is_validated_per_stack(value, ok):
    from settings import ConfigError

    if ok:
        assert harness.run("staging", overrides={"accessKeyRotationDays": value}).stack == "staging"
        return
    with pytest.raises(ConfigError, match=r"accessKeyRotationDays on stack staging: expected an integer from 2 to 90"):
        harness.run("staging", overrides={"accessKeyRotationDays": value})


def test_a_bad_rehearsal_date_is_refused(monkeypatch):
    from settings import ConfigError

    monkeypatch.setenv(ROTATION_DATE_VARIABLE, "next tuesday")
    with pytest.raises(ConfigError, match=f"{ROTATION_DATE_VARIABLE} .environment. for stack staging"):
        harness.run("staging")


# ------------------------------------------------------------------------------ the graph

def _plan_on(monkeypatch, day: dt.date, stack: str = "production") -> harness.Plan:
    monkeypatch.setenv(ROTATION_DATE_VARIABLE, day.isoformat())
    return harness.run(stack)


def test_each_identity_is_a_group_policy_and_two_users_with_one_key_each(cloud_plan):
    assert cloud_plan.of_type("aws:iam/userPolicy:UserPolicy") == [], "IAM.2: no policy on a user"
    users = {u.urn: u for u in cloud_plan.of_type("aws:iam/user:User")}
    for identity in IDENTITIES:
        group = cloud_plan.one("aws:iam/group:Group", identity)
        policy = cloud_plan.one("aws:iam/groupPolicy:GroupPolicy", f"{identity}-policy")
        assert group.urn in policy.property_dependencies["group"]
        for slot in key_rotation.SLOTS:
            user = cloud_plan.one("aws:iam/user:User", f"{identity}-{slot}")
            assert user.inputs["tags"]["sos-key-rotation-days"] == "90"
            member = cloud_plan.one("aws:iam/userGroupMembership:UserGroupMembership", f"{identity}-{slot}-member")
            assert user.urn in member.property_dependencies["user"]
            assert group.urn in member.property_dependencies["groups"]
            key = cloud_plan.one(KEY, f"{identity}-{slot}-key")
            assert [users[u].name for u in key.property_dependencies["user"]] == [user.name]
            # Usable before anyone gets it, replaced on its slot's schedule, create-first.
            assert {member.urn, policy.urn} <= set(key.depends_on)
            assert isinstance(key.replacement_trigger, float)
            assert key.delete_before_replace_defined and not key.delete_before_replace


def test_whoever_takes_a_key_waits_for_it_to_settle(cloud_plan):
    from components.access_keys import KEY_SETTLE_SECONDS

    for identity, user in (("storage-api", "sos-"), ("storage-backup-writer", "postgres-s3-credentials-writer-run")):
        (settle,) = [c for c in cloud_plan.of_type("command:local:Command") if c.name.startswith(f"{identity}-")
                     and c.name.endswith("-key-settled")]
        assert settle.inputs["create"] == f"sleep {KEY_SETTLE_SECONDS}" and KEY_SETTLE_SECONDS >= 10
        slot = settle.name[len(identity) + 1]
        key = cloud_plan.one(KEY, f"{identity}-{slot}-key")
        assert key.urn in settle.property_dependencies["triggers"]
        takers = [r for r in cloud_plan.resources if r.custom and r.name.startswith(user)
                  and key.urn in r.all_dependencies]
        assert takers and all(cloud_plan.depends_transitively(t.urn, settle.urn) for t in takers)


def test_the_containers_use_the_newer_key(monkeypatch):
    # 2026-11-11: slot a is the newer (due 2026-09-28); 2026-11-12: slot b is due.
    for day, slot in ((dt.date(2026, 11, 11), "a"), (dt.date(2026, 11, 12), "b")):
        plan = _plan_on(monkeypatch, day)
        api = [c for c in plan.of_type(CONTAINER) if c.name.startswith("sos-production-api-")]
        assert api and all(container_env(c)["AWS_ACCESS_KEY_ID"] ==
                           plan.states[plan.one(KEY, f"storage-api-{slot}-key").urn][0] for c in api)
        task = plan.one("command:remote:Command", "postgres-s3-credentials-writer-run")
        writer = plan.one(KEY, f"storage-backup-writer-{slot}-key").urn
        other = plan.one(KEY, f"storage-backup-writer-{'b' if slot == 'a' else 'a'}-key").urn
        assert writer in task.property_dependencies["stdin"] and other not in task.property_dependencies["stdin"]


def test_a_rotation_creates_first_moves_the_users_then_deletes_the_idle_key(monkeypatch):
    before = _plan_on(monkeypatch, dt.date(2026, 11, 11))
    after = _plan_on(monkeypatch, dt.date(2026, 11, 12))
    order = [(step.op, (step.new or step.old).name) for wave in plan_steps(before, after)
             for chain in wave for step in chain]
    touched = {name for _, name in order}
    # Only slot b's keys are replaced; slot a's stay.
    assert {name for op, name in order if name.endswith("-key")} == {"storage-api-b-key", "storage-backup-writer-b-key"}
    for identity, user in (("storage-api", "sos-production-api-"),
                           ("storage-backup-writer", "postgres-s3-credentials-writer-run")):
        created = order.index(("create", f"{identity}-b-key"))
        deleted = order.index(("delete-replaced", f"{identity}-b-key"))
        # What moves to the new key does so after it exists, and the old key goes after them.
        movers = [i for i, (op, name) in enumerate(order) if op == "create" and name.startswith(user)]
        assert movers and all(created < i < deleted for i in movers), (identity, order)
        # IAM is eventually consistent: the users move only after the new key had time to settle.
        settled = order.index(("create", f"{identity}-b-key-settled"))
        assert created < settled < min(movers)
    # The API moves (a rolling replacement); the key file is rewritten; PostgreSQL and the backup
    # container are not touched at all.
    assert ("create", "postgres-s3-credentials-writer-run") in order
    assert any(name.startswith("sos-production-api-") for op, name in order if op == "create")
    assert not touched & {"postgres-svc", "backups-svc", "redis-svc", "n8n-svc"}


# ------------------------------------------------------------------------------ pgBackRest, for real

@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto behind the drill's TLS proxy (pgBackRest speaks HTTPS only), the proxy logging the
    key id each request is signed with. (moto's own signature check disagrees with pgBackRest's
    signing through a proxy, so the keys are told apart here by what the requests carry; the
    offsite upload is checked against moto's IAM in test_backup_jobs.)"""
    import boto3

    from tests.test_backup_drill import S3Endpoint

    proc, port = moto_server(require_tool("moto_server"), tmp_path_factory.mktemp("moto") / "moto.log")
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id="x", aws_secret_access_key="x").create_bucket(Bucket="sos-backups")
    endpoint = S3Endpoint(port, tmp_path_factory.mktemp("s3-tls"))
    endpoint.cut()
    conf = endpoint.work / "nginx.conf"
    conf.write_text(conf.read_text().replace(
        "access_log off;", "log_format keys '$http_authorization';\n    access_log "
        f"{endpoint.work}/keys.log keys;"))
    endpoint.restore()
    yield endpoint
    if endpoint.proc:
        endpoint.cut()
    proc.terminate()
    proc.wait(timeout=10)


def test_pgbackrest_takes_a_rotated_key_from_its_file_without_a_restart(s3, tmp_path):
    from tests.test_backup_jobs import _write_credentials

    busybox = require_tool("busybox")
    applets = tmp_path / "bin"
    applets.mkdir()
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        (applets / applet).symlink_to(busybox)
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    conf = tmp_path / "pgbackrest.conf"
    repo = backup.Repository(bucket="sos-backups", region="us-east-1", endpoint="127.0.0.1", path="/rotation",
                             port=s3.port, uri_style="path", verify_tls=False)
    conf.write_text(backup.pgbackrest_conf(repo, pgdata=str(tmp_path / "pgdata"), work_dir=str(tmp_path / "work")))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "PGBACKREST_"))}
    env.update(PGBACKREST_CONFIG_INCLUDE_PATH=str(conf_d), PGBACKREST_REPO1_CIPHER_PASS="x" * 32)
    log = s3.work / "keys.log"

    def signed_with() -> set[str]:
        """One pgBackRest run, as each archive_command and backup job is; the key ids it signed with."""
        log.write_text("")
        result = subprocess.run([require_tool("pgbackrest"), f"--config={conf}", "--stanza=main", "repo-ls"],
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        return {line.split("Credential=")[1].split("/")[0] for line in log.read_text().splitlines() if line}

    old, new = ("AKIAOLDKEYSLOTA0001", "s" * 40), ("AKIANEWKEYSLOTB0002", "t" * 40)
    _write_credentials(applets, conf_d, *old)
    assert signed_with() == {old[0]}
    # The rotation: the task rewrites the file; the next run, with nothing restarted, signs anew.
    _write_credentials(applets, conf_d, *new)
    assert signed_with() == {new[0]}
    # Shown able to fail: without the file pgBackRest has no key at all (none in its environment).
    (conf_d / "s3-credentials.conf").unlink()
    result = subprocess.run([require_tool("pgbackrest"), f"--config={conf}", "--stanza=main", "repo-ls"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode != 0 and "repo1-s3-key" in result.stdout + result.stderr


# ------------------------------------------------------------------------------ the alert

def test_key_age_alert_fires_the_day_after_the_period_from_the_rendered_rules(tmp_path):
    """The alert's own expression over the rendered recording rules: empty the day before a
    key's due day, both keys two days after. (The expression alone: with promtool's clock at 1970,
    only a one-day evaluation step reaches 2027, and a recorded sample a day old is stale for an
    alert in another group; test_monitoring fires the alert itself on a one-minute step.)"""
    promtool = require_tool("promtool")
    created = {"api/a": canned.ACCESS_KEY_CREATED, "backup-writer/b": canned.ACCESS_KEY_CREATED}
    (tmp_path / "access-keys.yml").write_text(mon.access_key_rules(created, 90))
    (rule,) = [r for g in yaml.safe_load(mon.alert_rules())["groups"] for r in g["rules"]
               if r.get("alert") == "AccessKeyRotationOverdue"]
    # The key's creation as GNU date reads it, in days since 1970.
    made = int(subprocess.run(["date", "-u", "-d", canned.ACCESS_KEY_CREATED, "+%s"], capture_output=True,
                              text=True, check=True).stdout)
    due = made + 90 * 86400
    due_day = due // 86400
    overdue = [{"labels": f'{mon.KEY_DUE_METRIC}{{identity="{identity}",slot="{slot}"}}', "value": due}
               for identity, slot in (("api", "a"), ("backup-writer", "b"))]
    tests = {"rule_files": ["access-keys.yml"], "evaluation_interval": "1d", "tests": [{
        "interval": "1d", "input_series": [],
        "promql_expr_test": [
            {"expr": rule["expr"], "eval_time": f"{due_day - 1}d", "exp_samples": []},
            {"expr": rule["expr"], "eval_time": f"{due_day + 2}d", "exp_samples": overdue},
            {"expr": mon.KEY_CREATED_METRIC + '{identity="api"}', "eval_time": "1d",
             "exp_samples": [{"labels": f'{mon.KEY_CREATED_METRIC}{{identity="api",slot="a"}}', "value": made}]},
        ],
    }]}
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_plan_renders_the_key_rules_for_every_key(plan_files):
    rules_file = Path(plan_files["production"]) / "monitoring-prometheus" / "etc" / "sos" / "prometheus" / \
        "rules" / "access-keys.yml"
    doc = yaml.safe_load(rules_file.read_text())
    labels = {(r["labels"]["identity"], r["labels"]["slot"]) for r in doc["groups"][0]["rules"]}
    assert labels == {(i, s) for i in ("api", "backup-writer") for s in key_rotation.SLOTS}
    dev = Path(plan_files["dev"]) / "monitoring-prometheus" / "etc" / "sos" / "prometheus" / "rules" / "access-keys.yml"
    assert yaml.safe_load(dev.read_text())["groups"][0]["rules"] == []
