"""What the real Docker engine (Debian's dockerd, started by .ci/run) does with what the program
sends it: files for read-only containers, and volumes that must keep their owner.

These are behaviours of the engine, not of any schema: the offline plan and the loopback drills
accepted the designs these tests retire (uploads into read-only containers, a chowned cache volume
that Docker gave back to root)."""

from __future__ import annotations

import io
import tarfile

import pytest

from configs import file_bundle
from configs import nginx as nginx_conf
from settings.defaults import DEFAULT_IMAGES
from testsupport import engine
from testsupport.engine import Directory, ImageShape, docker, labelled
from testsupport.plans import container_files, plan_for
from tools.harness import unwrap
from tools.plan import config_writers

CONTAINER = "docker:index/container:Container"
# The parts of nginx:1.28.0-alpine the edge's volumes meet: the nginx user and group (101), and
# /var/cache/nginx, root's and 0755 (the image makes it as root; nginx makes its zones at start).
NGINX_SHAPE = ImageShape(users={"nginx": (101, 101)}, directories=[Directory("/var/cache/nginx")])
# A plain image for the config writer's throwaway container (it is never started).
PLAIN = ImageShape()


@pytest.fixture(scope="module")
def host():
    host = engine.docker_host()
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
    writer = next(r for r in plan.resources if r.type.startswith("command:")
                  and file_bundle.bound_settings(unwrap(r.inputs.get("create") or "")).get("SOS_VOLUME") == volume)
    name = engine.unique("cfg")
    script = engine.rebind(unwrap(writer.inputs["create"]), SOS_IMAGE=plain, SOS_VOLUME=name)
    result = engine.run_script(host, script, stdin=unwrap(writer.inputs["stdin"]))
    assert result.returncode == 0, result.stderr
    docker(host, "volume", "inspect", name)
    mount = next(m for m in container.inputs["mounts"] if unwrap(m["source"]) == volume)
    assert mount["readOnly"] is True
    directory = mount["target"]
    expected = {path: f for path, (f, _) in container_files(plan, container).items()
                if path.startswith(directory + "/") and "/" not in path[len(directory) + 1:]}
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
    nginx_image = engine.image(host, DEFAULT_IMAGES["nginx"], NGINX_SHAPE)
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
