"""Files for read-only containers: one volume per directory and version, written before the
container starts.

The Docker provider's `uploads` cannot be used: it copies every upload as a tar to `/`, which the
engine refuses on a read-only root filesystem even when a volume is mounted at the file's
directory ("container rootfs is marked read-only"); a copy into a volume is admitted. So a
never-started container holds the new volume while `docker cp` unpacks the files into it
(configs/docker_scripts/write-files.sh), and the service mounts it read-only. Each version of
the files gets a volume of its own (a new name when any file changes): the container is replaced
onto the new volume, the old one is deleted after it, and a file dropped from the program is gone
with its volume. The version is a random id kept while the content stays the same, so no volume
name is derived from a secret.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from components.host_commands import SHOWN, CommandRunner
from configs import file_bundle

CONFIG_LABEL = "sos.config-for"


@dataclass(frozen=True)
class ConfigFile:
    """A file handed to the container at creation. Secret content stays secret in state."""

    path: str
    content: pulumi.Input[str]
    mode: str = "0444"
    secret: bool = False


@dataclass(frozen=True)
class ConfigVolumeArgs:
    container_name: str
    directory: str  # where the container mounts it
    files: Sequence[ConfigFile]
    # Mount points of other volumes inside this one (the engine cannot make them in a read-only one).
    mount_points: Sequence[str]
    commands: CommandRunner
    image_id: pulumi.Input[str]  # the service's image: the holder is made of it, never started
    uid: int
    gid: int


def slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "root"


def by_directory(files: Sequence[ConfigFile], trees: Mapping[str, Sequence[str]]) -> dict[str, list[ConfigFile]]:
    """Files per config volume: their own directory's, or the tree's they lie in."""
    out: dict[str, list[ConfigFile]] = {}
    for f in files:
        tree = next((t for t in trees if f.path.startswith(t + "/")), None)
        out.setdefault(tree or f.path.rsplit("/", 1)[0], []).append(f)
    return dict(sorted(out.items()))


def config_volume(parent: pulumi.Resource, name: str, args: ConfigVolumeArgs) -> tuple[docker.Volume, pulumi.Resource]:
    """The volume of one directory's files, and the step that writes it (what the container waits for)."""
    child = pulumi.ResourceOptions(parent=parent)
    directory, files = args.directory, args.files
    secret = any(f.secret for f in files)
    text = pulumi.Output.all(*[f.content for f in files]).apply(lambda contents: file_bundle.bundle_text(
        [file_bundle.BundleFile(f.path[len(directory) + 1:], c, int(f.mode, 8), args.uid, args.gid)
         for f, c in zip(files, contents, strict=True)], args.mount_points))
    if secret:
        text = pulumi.Output.secret(text)
    digest = text.apply(lambda t: hashlib.sha256(t.encode()).hexdigest())
    version = random.RandomId(f"{name}-version", byte_length=4,
                              keepers={"files": pulumi.Output.secret(digest) if secret else digest}, opts=child)
    volume = docker.Volume(
        name, name=pulumi.Output.concat(args.container_name, "-cfg-", slug(directory), "-", version.hex),
        labels=[docker.VolumeLabelArgs(label=CONFIG_LABEL, value=args.container_name)],
        opts=child)
    script = pulumi.Output.all(args.image_id, volume.name).apply(lambda v: file_bundle.write_files_script(
        image=v[0], volume=v[1], directory=directory))
    writer = args.commands.run(
        f"{name}-write", create=script, stdin=text, triggers=[volume.name],
        # A volume is written once: a new service image (in the script) rewrites nothing under
        # the running container; new files come as a new volume, whose name replaces this.
        update=":",
        # Its output names the volume only; the files (secrets among them) come on stdin.
        logging=SHOWN, opts=child)
    return volume, writer
