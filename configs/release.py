"""Releases: a service's configuration files changed under a running container, never by
replacing it (the edge's nginx, PostgreSQL's reloadable settings).

A release is unpacked into `releases/<id>/` of the service's release volume, checked in a
throwaway container of the service's own image (`nginx -t`, `postgres -C`), made `current` by one
rename, and loaded by a reload inside the running container; the deployment waits until the
service reports the new id (configs/release_scripts/*.sh). What differs per service is a
`Reloader`: its check, how the id is written into the release, how it is reloaded and asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from configs.file_bundle import BundleFile, bind, bundle_text, unbundle

__all__ = ["CURRENT", "ReleaseFile", "Reloader", "apply_script", "bundle_text", "install_env", "install_script",
           "marker", "unbundle"]

SCRIPTS = Path(__file__).parent / "release_scripts"
CURRENT = "current"


# A file of a release; its owner is the installer's (the service's user), so none is given.
ReleaseFile = BundleFile


@dataclass(frozen=True)
class Reloader:
    name: str          # in messages: "edge", "postgres settings"
    directory: str     # where the service (and the installer) mount the release volume
    check: str         # shell, $1 = the new release's directory; fails on what the service refuses
    marker_file: str   # written into each release by the installer ...
    marker: str        # ... with this printf format of the release id, in the service's syntax
    reload: str        # shell run in the service's container
    probe: str         # shell run in the service's container: prints the id of the release it runs
    scratch: tuple[str, ...] = ()  # directories the check writes (tmpfs in the installer)


def install_script() -> str:
    return (SCRIPTS / "install-release.sh").read_text()


def install_env(reloader: Reloader, directory: str | None = None) -> dict[str, str]:
    """What install-release.sh reads (the release directory may be elsewhere in a test)."""
    return {"SOS_RELEASE_DIR": directory or reloader.directory, "SOS_CHECK": reloader.check,
            "SOS_MARKER_FILE": reloader.marker_file, "SOS_MARKER": reloader.marker}


def marker(marker_format: str, release_id: str) -> str:
    """The file the installer writes into a release (install-release.sh's printf, here)."""
    return marker_format.replace("%s", release_id).replace("\\n", "\n")


def apply_script(reloader: Reloader, image: str, volume: str, container: str, user: str,
                 extra: Mapping[str, str] | None = None) -> str:
    """The host-side script with its settings bound; plain values only (a release that holds a
    private key comes on stdin)."""
    return bind(SCRIPTS / "apply-release.sh", {
        **install_env(reloader),
        "SOS_NAME": reloader.name, "SOS_IMAGE": image, "SOS_VOLUME": volume, "SOS_CONTAINER": container,
        "SOS_USER": user, "SOS_INSTALL": install_script(), "SOS_SCRATCH": " ".join(reloader.scratch),
        "SOS_RELOAD": reloader.reload, "SOS_PROBE": reloader.probe, **(extra or {}),
    }, renderer="configs/release.py")
