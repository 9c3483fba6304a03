"""Deploys without downtime: the engine's steps for a planned change, replayed under constant load
against real nginx with the generated configuration, a loopback DNS server in place of Docker's,
and the real Fastify and Next.js apps honouring SIGTERM (testsupport/rollout.py).

The same drill on the order of the design before (every container replaced delete-first, the
edge's files as container uploads) shows the failures this design removes, so the drill can fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from configs import edge_release, release
from offline import harness
from testsupport import rollout
from testsupport.plans import plan_for, service_of
from testsupport.tools import require_tool
from tools.plan import WRITE_FILES_MARK


def _steps(before, after, legacy=False) -> list[str]:
    return [str(step) for wave in rollout.plan_steps(before, after, legacy) for chain in wave for step in chain]


API_IMAGE = {"images": {"api": "ghcr.io/storiesofsoftware/api:1.1.0"}}


# ------------------------------------------------------------------ the engine's order

@pytest.mark.parametrize("stack", ["dev", "production"])
def test_an_api_deploy_starts_new_replicas_switches_the_edge_then_stops_the_old(stack):
    before, after = plan_for(stack), harness.run(stack, overrides=API_IMAGE)
    steps = _steps(before, after)
    replicas = {"dev": 1, "production": 3}[stack]
    creates = [i for i, s in enumerate(steps) if re.fullmatch(rf"create sos-{stack}-api-\d+", s)]
    deletes = [i for i, s in enumerate(steps) if re.fullmatch(rf"delete-replaced sos-{stack}-api-\d+", s)]
    release = steps.index("update edge-release")
    migrate = steps.index("create api-migrate-run")
    assert len(creates) == len(deletes) == replicas
    # Migrations, then every new replica, then the edge's switch, then the old replicas.
    assert migrate < min(creates) and max(creates) < release < min(deletes)
    # Nothing else is touched: no data container, no edge container, no frontend.
    assert not [s for s in steps if re.search(r"(postgres|redis|edge-svc|frontend|n8n)", s) and "image" not in s]


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_every_container_states_its_replacement_order(stack):
    """pulumi-docker asks for delete-first on every container; only an explicit
    deleteBeforeReplace=false from the program overrides it (the engine's step generator)."""
    for c in plan_for(stack).of_type(rollout.CONTAINER):
        assert c.delete_before_replace_defined, c.name
        assert c.delete_before_replace is (service_of(c) not in ("api", "frontend")), c.name


def test_the_drill_follows_the_provider_when_the_program_is_silent():
    before = plan_for("dev")
    after = harness.run("dev", overrides=API_IMAGE)
    for r in after.resources:
        if r.type == rollout.CONTAINER:
            r.delete_before_replace_defined = False  # as if the program had not said
    steps = _steps(before, after)
    assert steps.index("delete-replaced sos-dev-api-0") == steps.index("create sos-dev-api-0") - 1


def test_replicas_start_in_batches_from_settings():
    """rolloutBatch 1: each new replica waits for the one before it; 3: all at once."""
    before = plan_for("production")
    for batch, waves_expected in ((1, 3), (3, 1)):
        after = harness.run("production", overrides={**API_IMAGE, "rolloutBatch": batch})
        waves = rollout.plan_steps(before, after)
        api_waves = {i for i, wave in enumerate(waves) for chain in wave for step in chain
                     if step.op == "create" and step.name.startswith("sos-production-api-")}
        assert len(api_waves) == waves_expected, (batch, api_waves)


def test_an_edge_change_touches_the_release_only():
    before = plan_for("dev")
    after = harness.run("dev", overrides={"adminCidrs": ["127.0.0.1/32", "10.1.0.0/16"]})
    assert _steps(before, after) == ["update edge-release"]


def test_the_design_before_replaced_delete_first():
    """What the drill's `legacy` order is: the order of the previous ContainerService (fixed
    names, delete-before-replace) and of an edge whose files were uploads."""
    before = plan_for("dev")
    api = _steps(before, harness.run("dev", overrides=API_IMAGE), legacy=True)
    assert api.index("delete-replaced sos-dev-api-0") == api.index("create sos-dev-api-0") - 1
    assert "update edge-release" not in api and "delete-replaced edge-svc" not in api
    edge = _steps(before, harness.run("dev", overrides={"adminCidrs": ["127.0.0.1/32", "10.1.0.0/16"]}), legacy=True)
    assert edge == ["delete-replaced edge-svc", "create edge-svc"]


# ------------------------------------------------------------------ the drill

DRILL_TOOLS = ("busybox", "node", "openssl")


def _reachable(name: str) -> Path:
    """A directory nginx's workers (nobody, when the tests run as root) can reach: pytest's own
    temporary directories sit under a 0700 parent."""
    path = Path(tempfile.mkdtemp(prefix=f"sos-{name}-"))
    path.chmod(0o755)
    return path


@pytest.fixture
def nginx_work():
    path = _reachable("nginx")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def drill():
    for tool in DRILL_TOOLS:
        require_tool(tool)
    work = _reachable("rollout")
    with rollout.Drill("dev", work) as d:
        results = {r.name: r for r in rollout.scenarios(d)}
        d.final_health = d.world.edge.health()
        d.current_release = (d.world.edge.releases / "current").resolve().name
        yield d, results
    shutil.rmtree(work, ignore_errors=True)
    print("\nrollout drill (start-first, edge reload):\n" + rollout.report(list(results.values())))


@pytest.fixture(scope="module")
def legacy_drill():
    for tool in DRILL_TOOLS:
        require_tool(tool)
    work = _reachable("rollout-legacy")
    with rollout.Drill("dev", work, legacy=True) as d:
        results = {r.name: r for r in rollout.scenarios(d)}
        yield results
    shutil.rmtree(work, ignore_errors=True)
    print("\nrollout drill (the design before):\n" + rollout.report(list(results.values())))


SCENARIOS = ["api deploys", "frontend deploys", "edge configuration changes",
             "api image that never becomes healthy", "edge configuration nginx refuses"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_no_request_fails_during(drill, name):
    _, results = drill
    result = results[name]
    assert result.sent >= 20 * result.deploys or result.sent >= 40, "the load ran through the scenario"
    assert result.failed == 0, result.failures


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_design_before_fails_requests_during(legacy_drill, name):
    result = legacy_drill[name]
    assert result.failed > 0, f"{name}: {result.sent} sent, none failed"


def test_a_replica_that_never_becomes_healthy_fails_the_deploy_and_the_old_one_keeps_serving(drill):
    d, results = drill
    result = results["api image that never becomes healthy"]
    assert len(result.deploy_errors) == 1 and "container failed to be in healthy state" in result.deploy_errors[0]
    # The edge was never switched (its release comes after the new replica) and the old replica
    # was never stopped (deletes come last): both were planned, neither ran.
    assert {"update edge-release", "delete-replaced sos-dev-api-0"} <= set(result.steps)
    assert "create sos-dev-api-0" in result.executed
    assert "update edge-release" not in result.executed
    assert "delete-replaced sos-dev-api-0" not in result.executed


def test_a_configuration_nginx_refuses_fails_with_nginx_message_and_the_old_one_keeps_serving(drill):
    d, results = drill
    result = results["edge configuration nginx refuses"]
    (error,) = result.deploy_errors
    assert re.search(r'\[emerg\] .*invalid time value "forever"', error), error
    assert "the running configuration is unchanged" in error
    # The edge still runs the release installed before, and reports it.
    assert d.final_health == d.current_release


def test_release_scripts_pass_shellcheck():
    tool = require_tool("shellcheck")
    for script in sorted([*edge_release.SCRIPTS.glob("*.sh"), *release.SCRIPTS.glob("*.sh")]):
        result = subprocess.run([tool, str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_the_rendered_release_script_passes_shellcheck(tmp_path):
    tool = require_tool("shellcheck")
    command = next(r for r in plan_for("production").resources if r.name == "edge-release")
    path = tmp_path / "apply-release"
    path.write_text(harness.unwrap(command.inputs["create"]))
    result = subprocess.run([tool, "-s", "sh", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert shutil.which("sh")


def test_an_edge_from_before_releases_is_not_signalled_but_replaced(tmp_path):
    """The first `pulumi up` after this design: the running edge still has its files as uploads
    (no releases volume). The release installs, does not signal it (SIGHUP would reload the old
    files and the wait for the new id would fail the deploy), and the edge's replacement starts
    on the release."""
    for tool in DRILL_TOOLS:
        require_tool(tool)
    busybox = rollout.busybox_path(tmp_path / "busybox")
    (tmp_path / "releases").mkdir()
    # SIGHUP would end it; it outlives a slow machine (killed below in any case).
    old_edge = subprocess.Popen(["sleep", "600"])
    try:
        (tmp_path / "edge.pid").write_text(str(old_edge.pid))
        state = {"releases": str(tmp_path / "releases"), "busybox": str(busybox),
                 "mounts": ["sos-dev-nginx-cache-cfg-etc-sos-nginx"], "health_port": 1,
                 "edge_log": str(tmp_path / "log"), "pid_file": str(tmp_path / "edge.pid")}
        bin_dir = rollout.install_docker_shim(tmp_path, state)
        command, _ = _release(plan_for("dev"))
        (tmp_path / "pki").mkdir()
        bundle = _bundle(tmp_path)
        result = subprocess.run(["/bin/sh", "-c", harness.unwrap(command.inputs["create"])], input=bundle,
                                capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, timeout=300)
        assert result.returncode == 0, result.stderr
        assert "starts with it" in result.stdout
        assert old_edge.poll() is None, "the old edge was signalled"
        assert (tmp_path / "releases" / "current" / edge_release.CONF_FILE).exists()
        # And with the releases volume mounted, the same call signals it.
        state["mounts"].append("sos-dev-nginx-releases")
        rollout.install_docker_shim(tmp_path, state)
        # Only the signal matters here: this edge has no health endpoint, so the step would wait
        # for the new id in vain (and then go back); it is stopped once the signal is seen.
        applying = subprocess.Popen(["/bin/sh", "-c", harness.unwrap(command.inputs["create"])],
                                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, start_new_session=True)
        applying.stdin.write(bundle)  # type: ignore[union-attr]
        applying.stdin.close()  # type: ignore[union-attr]
        try:
            # Generous: each step (install, nginx -t) took tens of seconds on a loaded CI machine.
            assert old_edge.wait(300) == -1  # killed by the SIGHUP: shown able to fail
        finally:
            os.killpg(applying.pid, signal.SIGKILL)
            applying.wait()
    finally:
        old_edge.kill()


def _release(plan):
    command = next(r for r in plan.resources if r.name == rollout.RELEASE_COMMAND and r.custom)
    return command, edge_release.unbundle(harness.unwrap(command.inputs["stdin"]))


def _bundle(work) -> str:
    """dev's release with a real certificate, made loadable here, otherwise as planned."""
    from configs import nginx as ng
    from testsupport.edge import TestPki
    from testsupport.servers import free_port

    (work / "cache").mkdir()
    ports = {p: free_port() for p in (ng.HTTP_PORT, ng.HTTPS_PORT, ng.HEALTH_PORT, ng.STATUS_PORT)}
    return rollout.drill_bundle(plan_for("dev"), TestPki(work / "pki", "localhost"), ports, work, "127.0.0.1:1")


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_only_the_release_command_shows_its_output(stack):
    """Tasks may echo what they were given: their output stays out of the update's log. A
    release prints its check's verdict and an id; the edge's key comes on stdin, and
    PostgreSQL's settings hold no secret."""
    commands = [r for r in plan_for(stack).resources if r.type in rollout.COMMANDS]
    shown = sorted(r.name for r in commands if r.inputs.get("logging") != "none")
    # host-ready prints cloud-init's status and the data volume's mount check; a config writer
    # prints the volume it wrote and docker's own errors (its files come on stdin).
    writers = sorted(r.name for r in commands if WRITE_FILES_MARK in harness.unwrap(r.inputs["create"]))
    assert writers and all(r.endswith("-write") for r in writers)
    # Grafana's CLI prints whether the admin's new password took; the password comes on stdin.
    shown_too = ["monitoring-grafana-admin-password"]
    assert shown == sorted(["edge-release", "postgres-settings-release", *writers, *shown_too,
                            *([] if stack == "dev" else ["host-ready"])])
    settings = next(r for r in commands if r.name == "postgres-settings-release")
    text = "".join(f.content for f in release.unbundle(harness.unwrap(settings.inputs["stdin"])).values())
    assert "archive_command" in text and not any(value in text for value in plan_for(stack).secret_values)
    assert all(isinstance(r.inputs["stdin"], harness.Secret) for r in commands if r.name in shown_too)
    assert all(isinstance(r.inputs["stdin"], harness.Secret) for r in commands if r.name in writers
               and "/secrets" in harness.unwrap(r.inputs["create"]))
    edge = next(r for r in commands if r.name == "edge-release")
    assert edge.inputs["logging"] == "stdoutAndStderr"
    assert isinstance(edge.inputs["stdin"], harness.Secret)
    assert "PRIVATE KEY" not in harness.unwrap(edge.inputs["create"])


def test_nginx_retries_a_refused_connection_on_the_next_replica(nginx_work):
    """production's generated configuration, its three API replicas resolved through DNS: with
    two of them refusing connections (stopped, or draining), every request still succeeds."""
    from configs import nginx as ng
    from testsupport.dns import LoopbackDns
    from testsupport.edge import TestPki, nginx_binary, remap
    from testsupport.servers import free_port, port_open, wait_for

    binary = nginx_binary()
    plan = harness.run("production", overrides={"adminCidrs": ["127.0.0.1/32"]})
    _, files = _release(plan)
    conf = files[edge_release.CONF_FILE].content.replace("stub_status;", "return 200;")
    servers = re.findall(r"server (sos-production-api-\d+-[0-9a-f]{7}):3001", conf)
    assert len(servers) == 3
    dns = LoopbackDns()
    port = free_port()
    for i, name in enumerate(servers):
        dns.register(name, f"127.0.30.{i + 1}", [name])
    live = subprocess.Popen(["python3", "-m", "http.server", str(port), "--bind", "127.0.30.3"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pki = TestPki(nginx_work, "storiesofsoftware.com")
    ports = {p: free_port() for p in (ng.HTTP_PORT, ng.HTTPS_PORT, ng.HEALTH_PORT, ng.STATUS_PORT)}
    (nginx_work / "cache").mkdir(mode=0o777)
    (nginx_work / "cache").chmod(0o777)
    text = remap(conf.replace(":3001 resolve", f":{port} resolve"), ports=ports, upstreams=None, pki=pki,
                 work=nginx_work, resolver=dns.address)
    (nginx_work / "nginx.conf").write_text(text)
    proc = subprocess.Popen([binary, "-c", str(nginx_work / "nginx.conf"), "-p", str(nginx_work), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import http.client
        import socket
        import ssl

        ctx = ssl.create_default_context(cafile=str(pki.server_cert))
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        assert wait_for(lambda: port_open(ports[ng.HTTPS_PORT]), 10)

        def get() -> int:
            raw = socket.create_connection(("127.0.0.1", ports[ng.HTTPS_PORT]), timeout=10)
            sock = ctx.wrap_socket(raw, server_hostname="api.storiesofsoftware.com")
            conn = http.client.HTTPConnection("api.storiesofsoftware.com", timeout=10)
            conn.sock = sock
            conn.request("GET", "/", headers={"Host": "api.storiesofsoftware.com"})
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status

        assert wait_for(lambda: port_open(port, "127.0.30.3"), 10)
        # Within the API's burst (20), so no request meets the rate limit.
        statuses = [get() for _ in range(15)]
        assert statuses == [200] * 15, statuses
        # Shown able to fail: with the live replica gone too, nginx has nowhere to go (and says
        # so with its 503, configs/nginx.py's unavailable()).
        live.terminate()
        live.wait(10)
        assert get() == 503
    finally:
        live.kill()
        proc.terminate()
        proc.wait(10)
        dns.close()




def test_a_changed_config_file_gets_a_new_volume_and_the_old_one_goes_after_the_container():
    """The engine's order for a changed prometheus.yml: a new version id, a new volume filled by its
    writer, Prometheus replaced onto it, and only then the old volume deleted. A file dropped from
    the program is gone with its volume (the Docker provider's uploads left it behind)."""
    before = plan_for("dev")
    after = harness.run("dev", overrides={"features": {"n8n": True, "monitoring": True, "appMetrics": False}})
    steps = [step for wave in rollout.plan_steps(before, after) for chain in wave for step in chain]
    order = [str(step) for step in steps if "prometheus" in step.name and "rules" not in step.name]
    config = "monitoring-prometheus-cfg-etc-sos-prometheus"
    assert order == [f"create {config}-version", f"create {config}", f"create {config}-write",
                     # Prometheus is replaced delete-first (one fixed name), onto the new volume.
                     "delete-replaced monitoring-prometheus", "create monitoring-prometheus",
                     f"delete-replaced {config}-write", f"delete-replaced {config}",
                     f"delete-replaced {config}-version"]
    assert not any("rules" in str(step) for step in steps), "unchanged rule files keep their volume"
