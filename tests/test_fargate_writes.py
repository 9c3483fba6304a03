"""Fargate's rule for what a non-root task may write, over every task definition the cluster
placement registers: under a read-only root, a path is writable only on a tmpfs whose mode or
owner admits the task's user, or on a task volume — which Fargate makes root:root 0755 when
empty, unless the image declares a VOLUME there (Amazon ECS developer guide, "Bind mounts").
Every path each task writes is judged: its scratch directories, n8n's user folder, and the
edge's release, pid, temp and cache paths from its own nginx.conf."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import tarfile

import pytest

from configs import edge_release
from offline.harness import unwrap
from testsupport.plans import CLOUD_STACKS, cluster_plan_for

# VOLUMEs the pinned images declare (their Dockerfiles at the pinned tags): none of the paths
# the tasks write. nginx:1.28.0-alpine, node-based app images and postgres:16.10-alpine declare
# none there; n8nio/n8n declares none since 1.0 (its data is in /home/node/.n8n, which the
# cluster does not use: N8N_USER_FOLDER is under /tmp).
IMAGE_VOLUMES: dict[str, set[str]] = {}
TMPFS_DEFAULT_MODE = 0o1777  # Docker's tmpfs mode when none is given


def _within(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount.rstrip("/") + "/")


def writable_by(definition: dict, path: str) -> bool:
    uid = int(definition["user"].split(":")[0])
    mounts = [(t["containerPath"], "tmpfs", t.get("mountOptions", []))
              for t in (definition.get("linuxParameters") or {}).get("tmpfs") or []]
    mounts += [(m["containerPath"], "volume", m) for m in definition.get("mountPoints") or []]
    holding = [m for m in mounts if _within(path, m[0])]
    if not holding:
        return not definition.get("readonlyRootFilesystem")
    mount, kind, detail = max(holding, key=lambda m: len(m[0]))
    if kind == "volume":
        if mount in IMAGE_VOLUMES.get(definition["image"], set()):
            return True
        return uid == 0  # empty task volume: root:root 0755
    options = dict(o.split("=", 1) if "=" in o else (o, "") for o in detail)
    if "ro" in options:
        return False
    mode = int(options.get("mode", oct(TMPFS_DEFAULT_MODE)), 8)
    owner = int(options.get("uid", "0"))
    return bool(mode & 0o002) or (owner == uid and bool(mode & 0o200))


def _edge_conf(definition: dict) -> str:
    """The nginx.conf the edge task carries in its release variable."""
    env = {e["name"]: e["value"] for e in definition["environment"]}
    release = gzip.decompress(base64.b64decode(env[edge_release.CLUSTER_RELEASE_VARIABLE]))
    with tarfile.open(fileobj=io.BytesIO(release)) as tar:
        return tar.extractfile(edge_release.CONF_FILE).read().decode()


def _edge_paths(definition: dict) -> list[str]:
    """The directories nginx writes, from the nginx.conf the task carries."""
    paths = re.findall(r"^\s*(?:pid|\w+_temp_path|proxy_cache_path)\s+(\S+?);?\s", _edge_conf(definition),
                       re.MULTILINE)
    return ["/tmp/edge", *[p.rsplit("/", 1)[0] if p.endswith(".pid") else p for p in paths]]


def writes(definition: dict) -> list[str]:
    found = [t["containerPath"] for t in (definition.get("linuxParameters") or {}).get("tmpfs") or []]
    found += [m["containerPath"] for m in definition.get("mountPoints") or []]
    env = {e["name"]: e["value"] for e in definition["environment"]}
    found += [env[k] for k in ("N8N_USER_FOLDER", "TMPDIR") if k in env]
    if definition["name"] == "edge":
        found += _edge_paths(definition)
    # Every task writes its /tmp (bootstrap's scratch files, the restore runbook's dump).
    return sorted({*found, "/tmp"})


def _definitions(stack: str) -> list[dict]:
    plan = cluster_plan_for(stack)
    return [d for t in plan.of_type("aws:ecs/taskDefinition:TaskDefinition")
            for d in json.loads(unwrap(t.inputs["containerDefinitions"]))]


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_path_a_task_writes_is_writable_by_its_user(stack):
    definitions = _definitions(stack)
    assert {d["name"] for d in definitions} >= {"edge", "api", "frontend", "n8n", "database-bootstrap"}
    unwritable = [(d["name"], d["user"], path) for d in definitions for path in writes(d) if not writable_by(d, path)]
    assert unwritable == []


def test_a_slow_client_spools_a_bounded_response_into_the_edge_s_memory():
    """nginx spools up to 1 GiB of one response for a slow client by default: on the cluster
    that is the task's memory (its /tmp tmpfs), so it is capped there; the host keeps its disk."""
    from placements.cluster import EDGE_PROXY_TEMP_MB

    edge = next(d for d in _definitions("production") if d["name"] == "edge")
    assert re.search(rf"^\s*proxy_max_temp_file_size {EDGE_PROXY_TEMP_MB}m;", _edge_conf(edge), re.MULTILINE)
    (tmp,) = [t for t in edge["linuxParameters"]["tmpfs"] if t["containerPath"] == "/tmp"]
    assert EDGE_PROXY_TEMP_MB * 8 < tmp["size"]  # several slow clients at once


def test_the_edges_paths_come_from_its_conf():
    edge = next(d for d in _definitions("production") if d["name"] == "edge")
    assert edge_release.CLUSTER_CACHE_DIR + "/static" in writes(edge) or any(
        p.startswith(edge_release.CLUSTER_CACHE_DIR) for p in writes(edge))


# The tmpfs mount options ECS documents (API reference, "Tmpfs": mountOptions valid values).
ECS_TMPFS_OPTIONS = {
    "defaults", "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async", "dirsync",
    "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "bind", "rbind", "unbindable",
    "runbindable", "private", "rprivate", "shared", "rshared", "slave", "rslave", "relatime", "norelatime",
    "strictatime", "nostrictatime", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}


@pytest.mark.parametrize("stack", CLOUD_STACKS)
def test_every_tmpfs_takes_only_options_ecs_documents_and_names_no_owner(stack):
    """`mode=` only: an owner (`uid=`) would depend on how Fargate hands it to the mount."""
    for definition in _definitions(stack):
        for tmpfs in definition["linuxParameters"]["tmpfs"]:
            names = {o.split("=", 1)[0] for o in tmpfs["mountOptions"]}
            assert names <= ECS_TMPFS_OPTIONS - {"uid", "gid"}, (definition["name"], tmpfs)
            assert "noexec" in names and "mode=1777" in tmpfs["mountOptions"], (definition["name"], tmpfs)


@pytest.mark.parametrize("mounts,expected", [
    # An empty task volume, as the definitions had them: root's, so uid 1000 cannot write.
    ({"mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]}, False),
    ({"linuxParameters": {"tmpfs": [{"containerPath": "/tmp", "size": 64, "mountOptions": ["rw"]}]}}, True),
    ({"linuxParameters": {"tmpfs": [{"containerPath": "/tmp", "size": 64,
                                     "mountOptions": ["mode=0700", "uid=0", "gid=0"]}]}}, False),
    ({"linuxParameters": {"tmpfs": [{"containerPath": "/tmp", "size": 64,
                                     "mountOptions": ["mode=0700", "uid=1000", "gid=1000"]}]}}, True),
    ({"linuxParameters": {"tmpfs": [{"containerPath": "/tmp", "size": 64, "mountOptions": ["ro"]}]}}, False),
    ({}, False),
])
def test_the_model_of_fargate(mounts, expected):
    definition = {"name": "x", "image": "i", "user": "1000:1000", "readonlyRootFilesystem": True,
                  "environment": [], **mounts}
    assert writable_by(definition, "/tmp/n8n") is expected
