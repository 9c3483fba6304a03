"""The data tier's Redis files, proven by a real redis-server."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from configs import redis as rc
from testsupport.plans import plan_for
from testsupport.servers import free_port, node_module, wait_for
from testsupport.tools import require_tool

# URL- and shell-hostile: every character a URL or a shell would mangle.
PASSWORD = "p@ss:w/rd?#%&=+$!()[]{}<>^~*-_;'\"` \\end"


class RedisServer:
    def __init__(self, directory: Path, conf_text: str, password: str) -> None:
        self.server_bin = require_tool("redis-server")
        self.cli = require_tool("redis-cli")
        self.dir = directory
        self.port = free_port()
        self.password_file = directory / "redis-password"
        self.password_file.write_text(password)
        (directory / "users.acl").write_text(rc.acl_file(password))
        self.conf = directory / "redis.conf"
        # The container's paths, remapped to this machine's (redis checks `dir` while parsing).
        remapped = conf_text.replace(f"dir {rc.DATA_DIR}\n", f"dir {directory}\n")
        remapped = remapped.replace(f"aclfile {rc.ACL_FILE}\n", f"aclfile {directory / 'users.acl'}\n")
        assert remapped.count(str(directory)) == 2
        self.conf.write_text(remapped)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        # The generated file, with only the port and address of this test machine.
        self.proc = subprocess.Popen(
            [self.server_bin, str(self.conf), "--port", str(self.port), "--bind", "127.0.0.1"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert wait_for(lambda: self.cli_run("ping").stdout.strip() in ("PONG", "NOAUTH Authentication required."))

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=20)
        self.proc = None
        return out

    def cli_run(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin"}
        if password is not None:
            env["REDISCLI_AUTH"] = password
        return subprocess.run([self.cli, "--no-auth-warning", "-h", "127.0.0.1", "-p", str(self.port), *args],
                              capture_output=True, text=True, env=env, timeout=10)

    def health(self, password_file: Path | None = None) -> int:
        script = rc.healthcheck_script(self.port, str(password_file or self.password_file))
        return subprocess.run(["sh", "-c", script], capture_output=True, timeout=10).returncode


def plan_conf(plan_files, stack: str) -> str:
    return (plan_files[stack] / "redis-svc" / "etc" / "sos" / "redis.conf").read_text()


@pytest.fixture
def redis_server(plan_files, tmp_path):
    server = RedisServer(tmp_path, plan_conf(plan_files, "production"), PASSWORD)
    server.start()
    yield server
    if server.proc:
        server.stop()


def test_server_loads_the_generated_conf(redis_server):
    limit = plan_for("production").one("docker:index/container:Container", "redis-svc").inputs["memory"]

    def get(name: str) -> str:
        out = redis_server.cli_run("config", "get", name, password=PASSWORD).stdout.split("\n")
        return out[1]

    assert int(get("maxmemory")) == rc.maxmemory_mb(limit) * 1024 * 1024 == 384 * 1024 * 1024
    assert get("maxmemory-policy") == "allkeys-lru"
    assert get("appendonly") == "yes"
    assert get("appendfsync") == "everysec"
    assert get("save") == "900 1 300 10 60 10000"
    assert get("slowlog-log-slower-than") == "10000"
    assert get("slowlog-max-len") == "128"


def test_password_is_required_and_a_wrong_one_refused(redis_server):
    assert "NOAUTH" in redis_server.cli_run("get", "x").stdout
    wrong = redis_server.cli_run("ping", password="wrong")
    assert "WRONGPASS" in wrong.stderr + wrong.stdout
    assert redis_server.cli_run("ping", password=PASSWORD).stdout.strip() == "PONG"
    # redis-cli exits 0 in both refusals: the reason the healthcheck reads the reply.
    assert wrong.returncode == 0


def test_dangerous_commands_are_denied(redis_server):
    for command in (["flushall"], ["config", "set", "maxmemory", "1"], ["acl", "setuser", "evil", "on"],
                    ["shutdown", "nosave"]):
        out = redis_server.cli_run(*command, password=PASSWORD).stdout
        assert "NOPERM" in out, command
    assert redis_server.cli_run("set", "k", "v", password=PASSWORD).stdout.strip() == "OK"


def test_no_plaintext_password_in_conf_or_acl(plan_files, redis_server):
    assert PASSWORD not in redis_server.conf.read_text()
    assert PASSWORD not in (redis_server.dir / "users.acl").read_text()
    conf = plan_conf(plan_files, "production")
    assert "requirepass" not in conf and "aclfile /etc/sos/secrets/users.acl" in conf


def test_healthcheck_passes_only_with_the_right_password(redis_server, tmp_path):
    assert redis_server.health() == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("not-it")
    assert redis_server.health(wrong) != 0


def test_healthcheck_fails_on_a_stopped_server(redis_server):
    assert redis_server.health() == 0
    redis_server.stop()
    assert redis_server.health() != 0


def test_healthcheck_is_what_the_container_runs_and_has_no_secret():
    container = plan_for("dev").one("docker:index/container:Container", "redis-svc")
    assert container.inputs["healthcheck"]["tests"] == rc.healthcheck()
    assert container.inputs["command"] == ["redis-server", "/etc/sos/redis.conf"]


def test_redis_url_with_hostile_password_works_in_ioredis(redis_server):
    """The API's client (ioredis) decodes the URL it is given."""
    ioredis = node_module("ioredis")
    url = rc.redis_url(PASSWORD, "127.0.0.1", redis_server.port)
    assert PASSWORD not in url and "%40" in url and "%3A" in url
    script = ("const Redis=require(process.argv[1]);const r=new Redis(process.argv[2],"
              "{lazyConnect:true,maxRetriesPerRequest:0,retryStrategy:()=>null});"
              "r.connect().then(()=>r.set('url-probe','ok')).then(()=>r.get('url-probe'))"
              ".then(v=>{console.log(v);return r.quit()}).catch(e=>{console.error(e.message);process.exit(1)})")
    result = subprocess.run(["node", "-e", script, str(ioredis), url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_data_survives_a_restart(plan_files, tmp_path):
    server = RedisServer(tmp_path, plan_conf(plan_files, "dev"), PASSWORD)
    server.start()
    server.cli_run("set", "durable", "yes", password=PASSWORD)
    time.sleep(1.2)  # appendfsync everysec
    server.stop()
    server.start()
    try:
        assert server.cli_run("get", "durable", password=PASSWORD).stdout.strip() == "yes"
    finally:
        server.stop()
