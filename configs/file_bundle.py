"""Files shipped to a Docker engine as one reproducible tar (base64 on a command's stdin), and
shell scripts with their settings bound: what the edge release and the config writer share."""

from __future__ import annotations

import base64
import io
import shlex
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

DOCKER_SCRIPTS = Path(__file__).parent / "docker_scripts"


@dataclass(frozen=True)
class BundleFile:
    path: str  # relative to the directory the bundle is unpacked in
    content: str
    mode: int = 0o444
    uid: int = 0
    gid: int = 0


def bundle(files: Iterable[BundleFile], directories: Iterable[str] = ()) -> bytes:
    """A reproducible tar (fixed times, sorted), so the same files give the same bytes and an
    unchanged set does not show up as a change in `pulumi preview`. Owners are numeric: the
    engine extracts them as given (no name lookup in the image). `directories` are made empty
    (mount points of other volumes inside this one)."""
    files = sorted(files, key=lambda f: f.path)
    wanted = {str(Path(f.path).parent) for f in files} | set(directories)
    for path in list(wanted):
        wanted.update(str(p) for p in Path(path).parents)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted(wanted - {"."}):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for f in files:
            data = f.content.encode()
            info = tarfile.TarInfo(f.path)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), f.mode, 0, f.uid, f.gid
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def bundle_text(files: Iterable[BundleFile], directories: Iterable[str] = ()) -> str:
    """What a command reads on stdin: the bundle, base64 (stdin is text)."""
    return base64.b64encode(bundle(files, directories)).decode() + "\n"


def unbundle(text: str) -> dict[str, BundleFile]:
    """The files of a bundle_text, for tests and `--write-files`."""
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(text)), mode="r") as tar:
        return {m.name: BundleFile(m.name, tar.extractfile(m).read().decode(), m.mode, m.uid, m.gid)  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


def bind(script: Path, settings: Mapping[str, str], renderer: str = "configs/file_bundle.py") -> str:
    """A shell script with its settings bound as assignments at the top; plain values only
    (secrets come on stdin). The file's own `#!` line is replaced by the header."""
    header = ["#!/bin/sh", f"# Rendered by {renderer} from configs/{script.parent.name}/{script.name}."]
    for name, value in sorted(settings.items()):
        if "\n" in value or "$" in value:
            # Shell for another shell (the container's), quoted whole: its $ stay as they are.
            header.append("# shellcheck disable=SC2016")
        header.append(f"{name}={shlex.quote(value)}")
    body = [line for line in script.read_text().splitlines() if not line.startswith("#!")]
    return "\n".join(header + body) + "\n"


def bound_settings(script_text: str) -> dict[str, str]:
    """The settings a `bind` header assigned (tests and `--write-files` read them back); a value
    that is a script of its own spans lines."""
    values: dict[str, str] = {}
    lines = iter(script_text.splitlines())
    for line in lines:
        name, eq, value = line.partition("=")
        if eq and name.isupper() and name.replace("_", "").isalnum():
            while True:
                try:
                    values[name] = shlex.split(value)[0] if value else ""
                    break
                except ValueError:  # a quote still open: the value goes on
                    value += "\n" + next(lines)
        elif line and not line.startswith("#"):
            break
    return values


def write_files_script(image: str, volume: str, directory: str) -> str:
    """Unpacks the bundle on stdin into `volume`, as mounted at `directory` (docker_scripts/write-files.sh)."""
    return bind(DOCKER_SCRIPTS / "write-files.sh", {"SOS_IMAGE": image, "SOS_VOLUME": volume, "SOS_DIR": directory})
