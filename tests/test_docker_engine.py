"""What the real Docker engine (Debian's dockerd, started by .ci/run) does with what the program
sends it: files for read-only containers, and volumes that must keep their owner.

These are behaviours of the engine, not of any schema: the offline plan and the loopback drills
accepted the designs these tests retire (uploads into read-only containers, a chowned cache volume
that Docker gave back to root)."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import tarfile

import pytest

from components.local_docker_host import PREFLIGHT, Preflight
from configs import file_bundle
from configs import nginx as nginx_conf
from offline.harness import unwrap
from settings import EdgePorts
from settings.defaults import DEFAULT_IMAGES
from testsupport import engine, faults, images, live
from testsupport.engine import ImageShape, docker, labelled
from testsupport.plans import container_files, plan_for
from testsupport.servers import free_port, wait_for
from testsupport.tools import require_tool
from tools.plan import config_writers

CONTAINER = "docker:index/container:Container"
# A plain image for the config writer's throwaway container (it is never started).
PLAIN = ImageShape()


@pytest.fixture(scope="module")
def host():
    host = engine.docker_host()
    # What an interrupted run left (its networks would hold dev's address plan).
    engine.remove_test_objects(host)
    yield host
    engine.remove_test_objects(host)


@pytest.fixture(scope="module")
def plain(host):
    return engine.image(host, "sos-test/plain:1", PLAIN)


def _tar(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return out.getvalue()


def test_the_restart_policy_restarts_a_crash_but_nothing_the_engines_kill_api_signalled(host, plain):
    """`unless-stopped`, the policy of every platform container, restarts a process killed from
    outside (a crash, the kernel's OOM killer; testsupport/faults.crash). A container the engine
    signalled through its kill API is one it takes as stopped by the user, whatever the signal:
    `docker kill -s KILL` is never restarted, and neither is a container that only got a HUP and
    kept running, at its next crash. So the edge's reload signals nginx from inside its container
    (configs/release_scripts/apply-release.sh), and the fault drill kills by host pid."""
    def started() -> str:
        return docker(host, "run", *labelled("-d", "--restart", "unless-stopped", "--entrypoint", "sh"), plain,
                      "-c", 'trap "echo reloaded" HUP; while :; do sleep 1; done').stdout.strip()

    killed, hupped, reloaded, crashed = started(), started(), started(), started()
    docker(host, "kill", "-s", "KILL", killed)
    docker(host, "kill", "-s", "HUP", hupped)
    docker(host, "exec", reloaded, "sh", "-c", "kill -HUP 1")
    assert wait_for(lambda: "reloaded" in docker(host, "logs", hupped).stdout
                    and "reloaded" in docker(host, "logs", reloaded).stdout, 10)
    faults.crash(host, [hupped, reloaded, crashed], plain)
    for cid in (reloaded, crashed):
        assert wait_for(lambda cid=cid: faults.restarts(host, cid) == 1 and faults.inspect(host, cid)["State"]["Running"],
                        15), cid
    for cid in (killed, hupped):
        state = faults.inspect(host, cid)
        assert not state["State"]["Running"] and state["State"]["ExitCode"] == 137 and state["RestartCount"] == 0


def test_the_providers_upload_is_refused_on_a_read_only_root_even_over_a_volume(host, plain):
    """pulumi-docker copies each upload as a tar extracted at `/` (CopyToContainer(ctx, id, "/", …)
    in the bridged provider); the engine checks the destination `/` against the read-only root
    and refuses, though the file's directory is a volume. Into the volume itself, it admits."""
    volume = engine.unique("upload")
    docker(host, "volume", "create", "--label", engine.LABEL, volume)
    container = docker(host, "create", *labelled("--read-only", "--network", "none"),
                       "--mount", f"type=volume,src={volume},dst=/etc/sos", plain).stdout.strip()
    refused = docker(host, "cp", "-", f"{container}:/", stdin=_tar({"etc/sos/app.conf": "x\n"}), check=False)
    assert refused.returncode != 0 and "container rootfs is marked read-only" in refused.stderr
    admitted = docker(host, "cp", "-", f"{container}:/etc/sos", stdin=_tar({"app.conf": "x\n"}), check=False)
    assert admitted.returncode == 0, admitted.stderr


def _dev_config_mounts():
    plan = plan_for("dev")
    writers = config_writers(plan)
    for c in plan.of_type(CONTAINER):
        for mount in c.inputs.get("mounts") or []:
            if unwrap(mount.get("source")) in writers:
                yield pytest.param(c.name, unwrap(mount["source"]), id=f"{c.name}:{mount['target']}")


@pytest.mark.parametrize(("container_name", "volume"), list(_dev_config_mounts()))
def test_every_config_volume_reaches_its_read_only_container(host, plain, container_name, volume):
    """Each config writer of the dev plan, its script as rendered, run against the engine with its
    bundle on stdin; then a read-only container as the service's user, with the volume mounted as
    the plan mounts it, reads every file with the plan's content, owner and mode."""
    plan = plan_for("dev")
    container = plan.one(CONTAINER, container_name)
    writer = config_writers(plan)[volume].command
    name = engine.unique("cfg")
    script = engine.rebind(unwrap(writer.inputs["create"]), SOS_IMAGE=plain, SOS_VOLUME=name)
    result = engine.run_script(host, script, stdin=unwrap(writer.inputs["stdin"]))
    assert result.returncode == 0, result.stderr
    docker(host, "volume", "inspect", name)
    mount = next(m for m in container.inputs["mounts"] if unwrap(m["source"]) == volume)
    assert mount["readOnly"] is True
    directory = mount["target"]
    inner = {t for t in (unwrap(m["target"]) for m in container.inputs["mounts"]) if t.startswith(directory + "/")}
    expected = {path: f for path, (f, _) in container_files(plan, container).items()
                if path.startswith(directory + "/") and not any(path.startswith(t + "/") for t in inner)}
    assert expected
    user = container.inputs.get("user") or "0:0"
    listing = docker(host, "run", "--rm", *labelled("--read-only", "--network", "none", "--user", user),
                     "--mount", f"type=volume,src={name},dst={directory},readonly", plain,
                     "sh", "-c", 'for f in "$@"; do stat -c "%n %u:%g %a" "$f"; sha256sum "$f"; done', "-",
                     *sorted(expected)).stdout.splitlines()
    import hashlib

    for path, f in sorted(expected.items()):
        assert f"{path} {f.uid}:{f.gid} {f.mode:o}" in listing
        assert f"{hashlib.sha256(f.content.encode()).hexdigest()}  {path}" in listing, path
    # The volume is the service's to read, not to change.
    refused = docker(host, "run", "--rm", *labelled("--network", "none", "--user", "0:0"),
                     "--mount", f"type=volume,src={name},dst={directory},readonly", plain,
                     "touch", f"{directory}/new", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def _owner_then_edge(host: str, nginx_image: str, owner_script: str) -> tuple[str, str]:
    """Runs a cache-owner step, then an edge container as the plan mounts the cache: the owner
    of /var/cache/nginx it sees, and whether nginx's user can make a directory there."""
    cache, releases = engine.unique("cache"), engine.unique("releases")
    for v in (cache, releases):
        docker(host, "volume", "create", "--label", engine.LABEL, v)
    result = engine.run_script(host, owner_script.replace("__CACHE__", cache).replace("__RELEASES__", releases))
    assert result.returncode == 0, result.stderr
    edge = docker(host, "run", "--rm", *labelled("--read-only", "--network", "none", "--user", "101:101"),
                  "--mount", f"type=volume,src={cache},dst={nginx_conf.CACHE_DIR}", nginx_image,
                  "sh", "-c", f'stat -c "%u:%g" {nginx_conf.CACHE_DIR}; mkdir {nginx_conf.CACHE_DIR}/static/x && echo made',
                  check=False)
    owner, _, rest = edge.stdout.partition("\n")
    return owner.strip(), rest.strip()


def test_the_edge_cache_keeps_the_nginx_user_as_its_owner(host):
    """The plan's owner step (its script as rendered, run against the engine) leaves the cache
    to the nginx user, and it stays so when the edge mounts it on the image's root-owned
    /var/cache/nginx. The previous step (chown of the empty volume) is shown losing it: Docker
    fills an empty volume from the image's directory, owner included, for every new container."""
    nginx_image = engine.image(host, DEFAULT_IMAGES["nginx"], images.shape_of(DEFAULT_IMAGES["nginx"]))
    plan = plan_for("dev")
    step = plan.one("command:local:Command", "edge-volume-owner-run")
    script = unwrap(step.inputs["create"])
    edge_image = next(word for word in script.split() if word.startswith("sha256:"))
    script = (script.replace(edge_image, nginx_image).replace("src=sos-dev-nginx-cache,", "src=__CACHE__,")
              .replace("src=sos-dev-nginx-releases,", "src=__RELEASES__,"))
    assert "__CACHE__" in script and "__RELEASES__" in script
    assert _owner_then_edge(host, nginx_image, script) == ("101:101", "made")

    previous = (f"docker run --rm --user 0:0 --cap-drop ALL --cap-add CHOWN --mount type=volume,src=__CACHE__,dst=/cache "
                f"--mount type=volume,src=__RELEASES__,dst=/releases --entrypoint chown {nginx_image} "
                "101:101 /cache /releases")
    owner, made = _owner_then_edge(host, nginx_image, previous)
    assert owner == "0:0" and made != "made"


def test_the_docker_scripts_pass_shellcheck(tmp_path):
    tool = require_tool("shellcheck")
    rendered = tmp_path / "write-files.sh"
    rendered.write_text(file_bundle.write_files_script(image="sha256:x", volume="v", directory="/etc/sos"))
    for path in (*sorted(file_bundle.DOCKER_SCRIPTS.glob("*.sh")), rendered):
        result = subprocess.run([tool, str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


# --- dev's preflight, the real script against the real engine and this machine ----------------

@pytest.fixture
def route_on_loopback():
    """A route of this machine (as a VPN or a LAN adds one). dockerd needs CAP_NET_ADMIN to make
    its bridges, so wherever it runs for these tests this can be done too."""
    subnet = "10.78.0.0/25"
    subprocess.run(["ip", "route", "add", subnet, "dev", "lo"], check=True, capture_output=True)
    yield subnet
    subprocess.run(["ip", "route", "del", subnet, "dev", "lo"], check=False, capture_output=True)


def test_the_preflight_names_what_holds_the_ports_and_the_subnet(host, plain, route_on_loopback):
    published, listened, free_http, free_https = (free_port() for _ in range(4))
    other_net = engine.unique("net")
    docker(host, "network", "create", *labelled("--label", "project=blog"), "--subnet", "10.77.0.0/25", other_net)
    blog = engine.unique("blog")
    docker(host, "run", "-d", *labelled("--label", "project=blog"), "--name", blog, "--network", other_net,
           "-p", f"127.0.0.1:{published}:80", plain, "sleep", "300")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", listened))
        listener.listen()
        result = engine.run_script(host, PREFLIGHT)
    assert result.returncode == 0, result.stderr
    answer = result.stdout

    def verdict(ports: EdgePorts, subnet: str = "10.79.0.0/24") -> list[str]:
        return Preflight("storiesofsoftware", "dev", ports, "127.0.0.1", subnet, "sos-dev-nginx").verdict(answer)

    refused = [(EdgePorts(published, free_https), "10.79.0.0/24", f"published by container {blog}"),
               (EdgePorts(free_http, listened), "10.79.0.0/24", "not a container"),
               (EdgePorts(free_http, free_https), "10.77.0.0/24", f"Docker network {other_net} (10.77.0.0/25)"),
               (EdgePorts(free_http, free_https), "10.78.0.0/24", f"routes {route_on_loopback} (via lo)")]
    for ports, subnet, expected in refused:
        with pytest.raises(ValueError, match=re.escape(expected)):
            verdict(ports, subnet)
    assert verdict(EdgePorts(free_http, free_https)) == []
    docker(host, "rm", "-f", blog)
    docker(host, "network", "rm", other_net)


def _write_config(host: str, plan, container, image: str) -> list[str]:
    """The container's config volumes, written by the plan's writers: its `--mount`s for them."""
    writers = config_writers(plan)
    mounts = []
    for mount in container.inputs.get("mounts") or []:
        source = unwrap(mount.get("source"))
        if source in writers:
            writer = writers[source].command
            name = engine.unique("cfg")
            script = engine.rebind(unwrap(writer.inputs["create"]), SOS_IMAGE=image, SOS_VOLUME=name)
            result = engine.run_script(host, script, stdin=unwrap(writer.inputs["stdin"]))
            assert result.returncode == 0, result.stderr
            mounts.append(f"type=volume,src={name},dst={mount['target']},readonly")
    return mounts


def _redis_then_snapshot(host: str, entrypoint: list[str]) -> tuple[str, str]:
    """Redis as the dev plan runs it (image stand-in, user, entrypoint, command, config volumes,
    data volume) takes a snapshot; then the backup job's user and groups, as the plan gives them,
    copy dump.rdb from the data volume mounted read-only. Returns (dump.rdb's mode, the copy's
    outcome)."""
    plan = plan_for("dev")
    redis, backups = plan.one(CONTAINER, "redis-svc"), plan.one(CONTAINER, "backups-svc")
    image = engine.image(host, DEFAULT_IMAGES["redis"], images.REDIS)
    data = engine.unique("redis-data")
    docker(host, "volume", "create", "--label", engine.LABEL, data)
    mounts = [a for m in _write_config(host, plan, redis, image) for a in ("--mount", m)]
    entry = ["--entrypoint", entrypoint[0]] if entrypoint else []
    server = docker(host, "run", "-d", *labelled("--read-only", "--network", "none", "--user", redis.inputs["user"]),
                    "--tmpfs", "/tmp", *mounts, "--mount", f"type=volume,src={data},dst=/data", *entry, image,
                    *entrypoint[1:], *redis.inputs["command"]).stdout.strip()
    try:
        ping = "REDISCLI_AUTH=\"$(cat /etc/sos/secrets/redis-password)\" redis-cli --no-auth-warning"
        for _ in range(100):
            if docker(host, "exec", server, "sh", "-c", f"{ping} ping", check=False).stdout.strip() == "PONG":
                break
            import time

            time.sleep(0.1)
        docker(host, "exec", server, "sh", "-c", f"{ping} set story 1 && {ping} save")
        mode = docker(host, "exec", server, "stat", "-c", "%a %u:%g", "/data/dump.rdb").stdout.strip()
    finally:
        docker(host, "rm", "-f", server, check=False)
    groups = [a for g in backups.inputs.get("groupAdds") or [] for a in ("--group-add", g)]
    copy = docker(host, "run", "--rm", *labelled("--read-only", "--network", "none", "--user", backups.inputs["user"]),
                  *groups, "--tmpfs", "/tmp", "--mount", f"type=volume,src={data},dst=/sources/redis,readonly", image,
                  "sh", "-c", "cp /sources/redis/dump.rdb /tmp/dump.rdb && head -c 5 /tmp/dump.rdb", check=False)
    return mode, (copy.stdout.strip() or copy.stderr.strip())


def test_the_backup_job_can_copy_the_redis_snapshot(host):
    """The official entrypoint sets umask 0077, so Redis writes dump.rdb 0600 as 999:1000 and the
    backup job (uid 70) could not copy it. Started under umask 0027 (the plan's entrypoint),
    Redis writes it 0640 and the job reads it through the redis group the plan gives it; with
    the image's own entrypoint, as before, the copy is refused."""
    plan = plan_for("dev")
    entrypoint = plan.one(CONTAINER, "redis-svc").inputs["entrypoints"]
    assert _redis_then_snapshot(host, entrypoint) == ("640 999:1000", "REDIS")
    mode, refused = _redis_then_snapshot(host, [])
    assert mode == "600 999:1000" and "Permission denied" in refused


def _mount_args(host: str, plan, container, image: str) -> list[str]:
    """The container's mounts and tmpfs as the plan gives them, with fresh volumes for its named
    ones and its config volumes written by the plan's writers."""
    args = [a for m in _write_config(host, plan, container, image) for a in ("--mount", m)]
    written = {unwrap(m["source"]) for m in container.inputs.get("mounts") or []} & set(config_writers(plan))
    for mount in container.inputs.get("mounts") or []:
        source = unwrap(mount["source"])
        if source in written:
            continue
        spec = f"type={mount['type']},dst={mount['target']}"
        if mount["type"] == "volume":
            name = engine.unique("vol")
            docker(host, "volume", "create", "--label", engine.LABEL, name)
            spec += f",src={name}"
        else:
            spec += f",src={source}"
            propagation = (mount.get("bindOptions") or {}).get("propagation")
            if propagation:
                spec += f",bind-propagation={propagation}"
        if mount.get("readOnly"):
            spec += ",readonly"
        args += ["--mount", spec]
    for path, options in (container.inputs.get("tmpfs") or {}).items():
        args += ["--tmpfs", f"{path}:{options}"]
    return args


# --- every path a container writes is writable by its user ------------------------------------

def _image_ref(plan, container) -> str:
    (ref,) = {r.inputs["name"] for r in plan.of_type("docker:index/remoteImage:RemoteImage")
              if r.urn in container.property_dependencies.get("image", [])}
    return ref


def _stand_in(host: str, plan, container) -> str:
    """The container's image as a local stand-in (testsupport/live.stand_in)."""
    ref = _image_ref(plan, container)
    return live.stand_in(host, next(r.inputs for r in plan.of_type("docker:index/remoteImage:RemoteImage")
                                    if r.inputs["name"] == ref))


def _volume_steps(plan, container) -> list:
    """The one-shot steps the container waits for that prepare its volumes (the edge's owner)."""
    deps, todo = set(), [container]
    while todo:
        for urn in todo.pop().all_dependencies - deps:
            deps.add(urn)
            todo.extend(r for r in plan.resources if r.urn == urn)
    sources = {unwrap(m["source"]) for m in container.inputs.get("mounts") or [] if m["type"] == "volume"}
    steps = []
    for r in plan.of_type("command:local:Command"):
        script = unwrap(r.inputs.get("create") or "")
        if r.urn in deps and "--network none" in script and any(f"src={s}," in script for s in sources):
            steps.append((r, [s for s in sources if f"src={s}," in script]))
    return steps


def _writable(container) -> list[str]:
    volumes = [m["target"] for m in container.inputs.get("mounts") or [] if m["type"] == "volume"
               and not m.get("readOnly")]
    return sorted({*volumes, *(container.inputs.get("tmpfs") or {})})


def _write_probe(host: str, plan, container, user: str) -> subprocess.CompletedProcess[str]:
    image = _stand_in(host, plan, container)
    mounts = _mount_args(host, plan, container, image)
    renamed = {}
    for step, sources in _volume_steps(plan, container):
        script = unwrap(step.inputs["create"])
        for source in sources:
            fresh = next(a.split("src=", 1)[1].split(",", 1)[0] for a in mounts
                         if a.startswith("type=volume") and f"dst={_target(container, source)}," in a + ",")
            renamed[source] = fresh
            script = script.replace(f"src={source},", f"src={fresh},")
        step_image = next(word for word in script.split() if word.startswith("sha256:"))
        result = engine.run_script(host, script.replace(step_image, image))
        assert result.returncode == 0, result.stderr
    groups = [a for g in container.inputs.get("groupAdds") or [] for a in ("--group-add", g)]
    probe = " && ".join(f'mkdir "{p}/.sos-probe" && rmdir "{p}/.sos-probe"' for p in _writable(container))
    return docker(host, "run", "--rm", *labelled("--read-only", "--network", "none", "--user", user), *groups,
                  *mounts, "--entrypoint", "/bin/sh", image, "-c", probe, check=False)


def _target(container, source: str) -> str:
    return next(m["target"] for m in container.inputs["mounts"] if unwrap(m["source"]) == source)


def _writers():
    plan = plan_for("dev")
    return sorted(c.name for c in plan.of_type(CONTAINER) if _writable(c))


@pytest.mark.parametrize("container_name", _writers())
def test_every_path_a_dev_container_writes_is_writable_by_its_user(host, container_name):
    """Each volume and tmpfs a dev container writes, as the engine builds them for the plan's user
    and groups on the image's stand-in (its users, directories, owners, modes and VOLUMEs as the
    official Dockerfile makes them; an empty volume is filled from the image's directory, owner
    included), after the steps that prepare them: the container can make a directory in each."""
    plan = plan_for("dev")
    container = plan.one(CONTAINER, container_name)
    result = _write_probe(host, plan, container, container.inputs.get("user") or "0:0")
    assert result.returncode == 0, result.stderr


def test_the_write_probe_fails_for_a_user_the_image_did_not_make_its_directories_for(host):
    """The same probe, Prometheus run as another user: /prometheus is nobody's (0775)."""
    plan = plan_for("dev")
    result = _write_probe(host, plan, plan.one(CONTAINER, "monitoring-prometheus"), "1000:1000")
    assert result.returncode != 0 and "Permission denied" in result.stderr


def test_the_edge_cache_is_prepared_by_its_owner_step_before_the_probe():
    """The probe of the edge runs the plan's owner step first (found through the dependencies)."""
    plan = plan_for("dev")
    steps = _volume_steps(plan, plan.one(CONTAINER, "edge-svc"))
    assert [(step.name, sorted(sources)) for step, sources in steps] == [
        ("edge-volume-owner-run", ["sos-dev-nginx-cache", "sos-dev-nginx-releases"])]


# --- every dev container as the provider creates it -------------------------------------------

@pytest.fixture(scope="module")
def dev_networks(host):
    """The dev plan's networks, made as the plan asks (driver, internal, address plan, labels),
    under test names."""
    plan = plan_for("dev")
    names = {}
    for network in plan.of_type("docker:index/network:Network"):
        name = engine.unique("net")
        engine.create_network(host, network.inputs, name)
        names[network.inputs["name"]] = name
    yield names
    engine.remove_test_objects(host)


def _sdk_mounts(host: str, plan, container, image: str) -> list[dict]:
    cli = _mount_args(host, plan, container, image)
    mounts = []
    for spec in (a for a in cli if a.startswith("type=")):
        fields = dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
        mounts.append({"target": fields["dst"], "source": fields["src"], "type": fields["type"],
                       "read_only": spec.endswith(",readonly"), "propagation": fields.get("bind-propagation")})
    return mounts


@pytest.mark.parametrize("container_name", sorted(c.name for c in plan_for("dev").of_type(CONTAINER)))
def test_the_engine_takes_every_dev_container_as_the_provider_sends_it(host, dev_networks, container_name):
    """Every argument of the plan's container (user, groups, read-only root, capabilities, security
    options, init, memory and swap, CPUs, shared memory, logging, restart, health check, networks
    with their aliases, environment, labels, mounts, tmpfs, published ports) given to the Engine
    API as the provider gives it, and the container started (its program replaced by `true`: the
    stand-in has no server; the arguments are what is checked). Found this way: a config volume is
    read-only, so a volume mounted inside it needs its mount point in it; and `rslave` on a host
    bind is refused where `/` is not a shared mount."""
    plan = plan_for("dev")
    container = plan.one(CONTAINER, container_name)
    image = _stand_in(host, plan, container)
    from testsupport.servers import free_port

    ports = {int(p["external"]): free_port() for p in container.inputs.get("ports") or []}
    name = engine.unique("c")
    engine.create_container(host, unwrap(container.inputs), name=name, image=image,
                            mounts=_sdk_mounts(host, plan, container, image), networks=dev_networks, ports=ports,
                            entrypoint=["/bin/true"])
    docker(host, "start", name)
    state = docker(host, "wait", name).stdout.strip()
    assert state == "0"
    inspected = docker(host, "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}|{{.Config.User}}|{{.HostConfig.Init}}",
                       name).stdout.strip()
    assert inspected == f"{str(container.inputs['readOnly']).lower()}|{container.inputs.get('user', '')}|" \
                        f"{str(container.inputs['init']).lower()}"
