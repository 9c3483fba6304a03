"""A real Docker engine for the tests, and the local images they run on it.

.ci/run starts Debian's dockerd with a data root and socket of its own and names the socket in
SOS_TEST_DOCKER_HOST; without it (a laptop) the tests that need an engine skip, and in CI they
fail. No registry is reachable, so images are made here: `docker import` of a root filesystem
built in Python (BusyBox from Debian with the libraries it links, users, groups and directories
with their owners and modes), tagged with the exact reference a stack pins.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from testsupport.tools import missing

ENV = "SOS_TEST_DOCKER_HOST"
# Every container and volume a test makes carries it, so one call removes them all.
LABEL = "sos.test"


def docker_host() -> str:
    """The engine's endpoint, checked to answer."""
    host = os.environ.get(ENV, "")
    if not host:
        missing("dockerd", f"no engine named in {ENV}; .ci/run starts Debian's docker.io")
    if shutil.which("docker") is None:
        missing("docker", "the docker CLI")
    result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], env=cli_env(host),
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        missing("dockerd", f"{host} does not answer: {result.stderr.strip()}")
    return host


def cli_env(host: str) -> dict[str, str]:
    """The CLI's environment with one endpoint: DOCKER_HOST wins over the CLI's current context
    only while DOCKER_CONTEXT is unset."""
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONTEXT"}
    env["DOCKER_HOST"] = host
    return env


def docker(host: str, *args: str, stdin: str | bytes | None = None, check: bool = True,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run(["docker", *args], env=cli_env(host), input=data, capture_output=True, timeout=timeout)
    out = subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(errors="replace"),
                                      result.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def run_script(host: str, script: str, stdin: str = "", timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A command step's script as pulumi-command runs it: `/bin/sh -c`, stdin given, against the engine."""
    return subprocess.run(["/bin/sh", "-c", script], env=cli_env(host), input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def rebind(script: str, **settings: str) -> str:
    """A rendered script (configs/file_bundle.bind) with some of its bound settings replaced."""
    for name, value in settings.items():
        script, count = re.subn(rf"^{name}=.*$", lambda _m, n=name, v=value: f"{n}={shlex.quote(v)}", script,
                                count=1, flags=re.MULTILINE)
        assert count == 1, f"{name} is not bound in the script"
    return script


def unique(prefix: str) -> str:
    return f"sos-test-{prefix}-{uuid.uuid4().hex[:8]}"


def remove_test_objects(host: str) -> None:
    """Every container, volume and network a test made (labelled), in that order."""
    for kind, ls, rm in (("container", ["ps", "-aq"], ["rm", "-f"]), ("volume", ["volume", "ls", "-q"], ["rm", "-f"]),
                         ("network", ["network", "ls", "-q"], ["rm"])):
        ids = docker(host, *ls, "--filter", f"label={LABEL}", check=False).stdout.split()
        if ids:
            docker(host, kind, *rm, *ids, check=False)


# ---------------------------------------------------------------- local images

@dataclass(frozen=True)
class Directory:
    path: str
    uid: int = 0
    gid: int = 0
    mode: int = 0o755


@dataclass(frozen=True)
class ImageShape:
    """What Docker's behaviour depends on in an image: its users and groups, the directories it
    has with their owners and modes (a new volume is filled from them), its volumes, user,
    working directory and entrypoint; and the real programs it runs (Debian's, copied with the
    libraries they link), with scripts of our own where the official image has one."""

    users: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # name -> (uid, gid)
    directories: Sequence[Directory] = ()
    volumes: Sequence[str] = ()
    user: str = ""
    workdir: str = "/"
    programs: Sequence[str] = ()  # absolute paths on this machine, kept at the same path
    files: Mapping[str, tuple[str, int]] = field(default_factory=dict)  # path -> (text, mode)
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ("/bin/sh",)
    # Programs placed elsewhere than they are here (path in image -> path here), with their libraries.
    binaries: Mapping[str, str] = field(default_factory=dict)
    # Whole directories (path in image -> directory here), root-owned, symbolic links kept; added
    # last, so a file of theirs replaces one of the same path. `tree_key` names their version
    # (a lock file's digest) for the image cache: they are too big to hash at every run.
    trees: Mapping[str, str] = field(default_factory=dict)
    tree_key: str = ""
    tree_exclude: Sequence[str] = ()  # paths in the image the trees leave out (and all below them)
    links: Mapping[str, str] = field(default_factory=dict)  # path -> target
    env: Mapping[str, str] = field(default_factory=dict)


def _with_libraries(programs: Iterable[str]) -> list[tuple[str, Path]]:
    """Each program and the shared libraries it links, as (path in image, path here)."""
    files: dict[str, Path] = {}
    for program in programs:
        files[program.lstrip("/")] = Path(program).resolve()
        out = subprocess.run(["ldd", program], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            match = re.search(r"(/\S+)\s+\(0x", line)
            if match:
                files[match.group(1).lstrip("/")] = Path(match.group(1)).resolve()
    return sorted(files.items())


def _busybox_files(shape: ImageShape) -> list[tuple[str, Path]]:
    busybox = shutil.which("busybox") or missing("busybox", "Debian's busybox package")
    for program in [*shape.programs, *shape.binaries.values()]:
        if not Path(program).exists():
            missing(Path(program).name, f"{program} (Debian's package; .ci/run installs it)")
    files = [("bin/busybox" if inside == busybox.lstrip("/") else inside, here)
             for inside, here in _with_libraries([busybox, *shape.programs, *shape.binaries.values()])]
    moved = {program.lstrip("/"): inside.lstrip("/") for inside, program in shape.binaries.items()}
    return [(moved.get(inside, inside), here) for inside, here in files]


def _applets() -> tuple[str, ...]:
    """Every applet of Debian's BusyBox: an Alpine image has BusyBox's whole set as its tools."""
    busybox = shutil.which("busybox") or missing("busybox", "Debian's busybox package")
    listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    # Debian's BusyBox has no `install`: ours stands in for the directory form (INSTALL below).
    return tuple(sorted(set(listed) - {"busybox", "install"}))


APPLETS = _applets() if shutil.which("busybox") else ("sh",)
# Alpine's BusyBox has `install`; Debian's does not. The directory form the Dockerfiles use.
INSTALL = """#!/bin/sh
# Stand-in for BusyBox's install: `install -d [-o USER] [-g GROUP] [-m MODE] DIR...` only.
set -eu
dirs=false; owner=""; group=""; mode=""
while [ $# -gt 0 ]; do
    case "$1" in
        -d|--directory) dirs=true ;;
        -o|--owner) owner="$2"; shift ;;
        -g|--group) group="$2"; shift ;;
        -m|--mode) mode="$2"; shift ;;
        *) break ;;
    esac
    shift
done
$dirs || { echo "stand-in install: only -d" >&2; exit 1; }
for d in "$@"; do
    mkdir -p "$d"
    [ -z "$owner$group" ] || chown "$owner${group:+:$group}" "$d"
    [ -z "$mode" ] || chmod "$mode" "$d"
done
"""


def rootfs(shape: ImageShape, out: BinaryIO | None = None) -> bytes:
    """The image's root filesystem as a tar, into `out` (a file, for big trees) or returned. A path
    given twice keeps its last entry: the engine refuses a tar with duplicate paths."""
    users = {"root": (0, 0), **shape.users}
    entries: dict[str, tuple[tarfile.TarInfo, bytes | Path | None]] = {}

    def put(info: tarfile.TarInfo, data: bytes | Path | None = None) -> None:
        entries.pop(info.name, None)
        entries[info.name] = (info, data)

    def directory(path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) not in entries:
                directory("/".join(parts[:i]))
        info = tarfile.TarInfo(path.strip("/"))
        info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, gid
        put(info)

    def parent(path: str) -> None:
        folder = str(Path(path.strip("/")).parent)
        if folder != "." and folder not in entries:
            directory(folder)

    def text(path: str, content: str, mode: int = 0o644) -> None:
        parent(path)
        data = content.encode()
        info = tarfile.TarInfo(path.strip("/"))
        info.size, info.mode = len(data), mode
        put(info, data)

    def link(path: str, target: str) -> None:
        parent(path)
        info = tarfile.TarInfo(path.strip("/"))
        info.type, info.linkname = tarfile.SYMTYPE, target
        put(info)

    def host_file(inside: str, here: Path, root_owned: bool = False) -> None:
        parent(inside)
        info = tarfile.TarInfo(inside.strip("/"))
        st = here.lstat()
        info.mode = st.st_mode & 0o7777
        if here.is_symlink():
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(here)
            put(info)
        elif here.is_dir():
            info.type = tarfile.DIRTYPE
            put(info)
        else:
            here = here.resolve()
            info.size = here.stat().st_size
            info.mode = here.stat().st_mode & 0o7777
            put(info, here)

    for d in [Directory("bin"), Directory("etc"), Directory("tmp", mode=0o1777), Directory("root", mode=0o700),
              *shape.directories]:
        directory(d.path, d.uid, d.gid, d.mode)
    for inside, here in _busybox_files(shape):
        host_file(inside, here)
    for applet in APPLETS:
        link(f"bin/{applet}", "busybox")
    groups = {gid: name for name, (_, gid) in users.items()}
    # Docker sets HOME from here for the container's user: the home a shape has, else /.
    homes = {d.path for d in shape.directories}
    text("etc/passwd", "".join(f"{n}:x:{u}:{g}:{n}:{f'/home/{n}' if f'/home/{n}' in homes else '/'}:/bin/sh\n"
                               for n, (u, g) in users.items()))
    text("etc/group", "".join(f"{n}:x:{g}:\n" for g, n in sorted(groups.items())))
    text("usr/bin/install", INSTALL, 0o755)
    for path, (content, mode) in sorted(shape.files.items()):
        text(path, content, mode)
    for path, linked in sorted(shape.links.items()):
        link(path, linked)
    for inside, here in sorted(shape.trees.items()):
        top = Path(here)
        host_file(inside, top)
        if top.is_dir() and not top.is_symlink():
            for folder, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if f"{inside.rstrip('/')}/{(Path(folder) / d).relative_to(top)}"
                           not in shape.tree_exclude]
                for name in sorted(dirs + files):
                    path = Path(folder) / name
                    host_file(f"{inside.rstrip('/')}/{path.relative_to(top)}", path)

    target = out or io.BytesIO()
    with tarfile.open(fileobj=target, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries.values():
            if isinstance(data, Path):
                with data.open("rb") as source:
                    tar.addfile(info, source)
            else:
                tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return target.getvalue() if isinstance(target, io.BytesIO) else b""


def image(host: str, ref: str, shape: ImageShape) -> str:
    """`ref` on the engine, built from `shape` unless an image of that shape is there already
    (the shape's digest is a label: cached between runs on the same engine)."""
    import hashlib
    import inspect
    import json

    # The code that lays the files out is part of what an image is.
    digest = hashlib.sha256(repr((shape, APPLETS, INSTALL, inspect.getsource(rootfs))).encode()
                            + rootfs_key(shape)).hexdigest()[:16]
    found = docker(host, "image", "inspect", "--format", "{{index .Config.Labels \"sos.shape\"}}", ref, check=False)
    if found.returncode == 0 and found.stdout.strip() == digest:
        return ref
    changes = [f"LABEL sos.shape={digest}", f"WORKDIR {shape.workdir}", f"CMD {json.dumps(list(shape.cmd))}",
               "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    if shape.entrypoint:
        changes.append(f"ENTRYPOINT {json.dumps(list(shape.entrypoint))}")
    changes += [f"VOLUME {v}" for v in shape.volumes]
    if shape.user:
        changes.append(f"USER {shape.user}")
    changes += [f"ENV {k}={v}" for k, v in sorted(shape.env.items())]
    args = [a for c in changes for a in ("--change", c)]
    with tempfile.TemporaryFile() as tar:
        rootfs(shape, tar)
        tar.seek(0)
        result = subprocess.run(["docker", "import", *args, "-", ref], env=cli_env(host), stdin=tar,
                                capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise AssertionError(f"docker import of {ref} failed: {result.stderr.strip()}")
    return ref


def rootfs_key(shape: ImageShape) -> bytes:
    """What the copied programs are (a new Debian package makes new images)."""
    return repr([(inside, here.stat().st_size, here.stat().st_mtime) for inside, here in _busybox_files(shape)]).encode()


def labelled(*args: str) -> list[str]:
    return ["--label", LABEL, *args]


def stat(host: str, image_ref: str, mounts: Iterable[str], paths: Iterable[str], user: str = "0:0") -> dict[str, str]:
    """`uid:gid mode` of each path, seen by `user` in a container with these `--mount`s."""
    paths = list(paths)
    mount_args = [a for m in mounts for a in ("--mount", m)]
    out = docker(host, "run", "--rm", *labelled(), "--network", "none", "--user", user, *mount_args, image_ref,
                 "stat", "-c", "%n %u:%g %a", *paths).stdout
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines()}


# ---------------------------------------------------------------- a container as the provider makes it

def create_network(host: str, inputs: Mapping[str, Any], name: str) -> str:
    """`docker_network` as the plan asks for it (driver, internal, address plan, labels, options),
    named `name`; its id."""
    args = ["network", "create", "--driver", str(inputs.get("driver") or "bridge"), "--label", LABEL]
    args += ["--internal"] if inputs.get("internal") else []
    for ipam in inputs.get("ipamConfigs") or []:
        args += ["--subnet", ipam["subnet"]] + (["--gateway", ipam["gateway"]] if ipam.get("gateway") else [])
    args += [a for lab in inputs.get("labels") or [] for a in ("--label", f"{lab['label']}={lab['value']}")]
    args += [a for k, v in (inputs.get("options") or {}).items() for a in ("--opt", f"{k}={v}")]
    return docker(host, *args, name).stdout.strip()


def go_nanoseconds(text: str) -> int:
    """A Go duration string ("2m0s", "10s") in nanoseconds, as the provider's ParseDuration."""
    total = 0
    for number, unit in re.findall(r"(\d+)(h|m|s)", text):
        total += int(number) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total * 1_000_000_000


def create_container(host: str, inputs: Mapping[str, object], *, name: str, image: str,
                     mounts: Sequence[Mapping[str, object]], networks: Mapping[str, str],
                     ports: Mapping[int, int], entrypoint: Sequence[str] | None = None) -> str:
    """`docker_container` as the provider sends it to the Engine API (create, connect the other
    networks, not started): the plan's inputs field by field, with test names for its volumes and
    networks (`mounts` already renamed, `networks` plan name -> test name) and free host ports."""
    import docker as docker_sdk

    client = docker_sdk.APIClient(base_url=host.replace("unix://", "unix://"), version="auto")
    health = inputs.get("healthcheck")
    healthcheck = None
    if isinstance(health, Mapping):
        healthcheck = {"test": list(health["tests"]), "interval": go_nanoseconds(str(health["interval"])),
                       "timeout": go_nanoseconds(str(health["timeout"])), "retries": int(health["retries"]),
                       "start_period": go_nanoseconds(str(health["startPeriod"]))}
    capabilities = inputs.get("capabilities") or {}
    log_opts = inputs.get("logOpts") or {}
    host_config = client.create_host_config(
        binds=None, mounts=[docker_sdk.types.Mount(**m) for m in mounts],  # type: ignore[arg-type]
        tmpfs=dict(inputs.get("tmpfs") or {}),  # type: ignore[arg-type]
        read_only=bool(inputs.get("readOnly")),
        cap_drop=list(capabilities.get("drops") or []), cap_add=list(capabilities.get("adds") or []) or None,  # type: ignore[union-attr]
        security_opt=list(inputs.get("securityOpts") or []),  # type: ignore[arg-type]
        init=bool(inputs.get("init")),
        # The provider's memory is in MB.
        mem_limit=int(inputs["memory"]) * 1024 * 1024, memswap_limit=int(inputs["memorySwap"]) * 1024 * 1024,  # type: ignore[call-overload]
        nano_cpus=int(float(str(inputs["cpus"])) * 1e9),
        shm_size=int(inputs["shmSize"]) * 1024 * 1024 if inputs.get("shmSize") else None,  # type: ignore[call-overload]
        log_config={"Type": inputs.get("logDriver") or "json-file", "Config": dict(log_opts)},  # type: ignore[arg-type]
        restart_policy={"Name": inputs.get("restart") or "no"},
        group_add=list(inputs.get("groupAdds") or []) or None,  # type: ignore[arg-type]
        port_bindings={f"{p['internal']}/tcp": (p["ip"], ports[int(p["external"])])  # type: ignore[index]
                       for p in inputs.get("ports") or []},  # type: ignore[union-attr]
    )
    attached = list(inputs.get("networksAdvanced") or [])  # type: ignore[call-overload]
    first = attached[0] if attached else None
    networking = None
    if first is not None:
        networking = client.create_networking_config(
            {networks[first["name"]]: client.create_endpoint_config(aliases=list(first.get("aliases") or []))})
    labels = {item["label"]: item["value"] for item in inputs.get("labels") or []}  # type: ignore[union-attr]
    labels[LABEL] = ""
    created = client.create_container(
        image, name=name, hostname=str(inputs.get("hostname") or name), user=str(inputs.get("user") or ""),
        command=list(inputs["command"]) if inputs.get("command") else None,  # type: ignore[call-overload]
        entrypoint=list(entrypoint) if entrypoint is not None else (
            list(inputs["entrypoints"]) if inputs.get("entrypoints") else None),  # type: ignore[call-overload]
        environment=list(inputs.get("envs") or []),  # type: ignore[call-overload]
        labels=labels, healthcheck=healthcheck, stop_timeout=inputs.get("stopTimeout"),  # type: ignore[arg-type]
        ports=[int(p["internal"]) for p in inputs.get("ports") or []] or None,  # type: ignore[union-attr]
        host_config=host_config, networking_config=networking)
    for extra in attached[1:]:
        client.connect_container_to_network(created["Id"], networks[extra["name"]],
                                            aliases=list(extra.get("aliases") or []))
    return str(created["Id"])
