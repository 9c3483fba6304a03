"""An edge release: the nginx configuration and its certificate files, shipped as one tar.

The edge container is never replaced for a configuration or certificate change. A release is
unpacked into `releases/<id>/` of the edge's configuration volume, checked with `nginx -t` in a
throwaway container of the same image, made `current` by one rename, and loaded by SIGHUP
(configs/edge_scripts/*.sh). nginx runs `-c current/nginx.conf`, and the configuration names its
files relative to its own directory, so one release is self-contained and a reload reads the new
files together.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from collections.abc import Mapping
from pathlib import Path

from configs.file_bundle import BundleFile, bind, bundle, bundle_text, unbundle

__all__ = ["ReleaseFile", "bundle", "bundle_text", "unbundle"]

SCRIPTS = Path(__file__).parent / "edge_scripts"
EDGE_DIR = "/etc/sos/edge"
CURRENT = f"{EDGE_DIR}/current"
CONF_FILE = "nginx.conf"
CERT_FILE = "tls/origin.crt"
KEY_FILE = "tls/origin.key"
CLIENT_CA_FILE = "tls/origin-pull-ca.crt"
# Written by install-release.sh into each release: `geo $sos_release { default "<id>"; }`.
RELEASE_FILE = "release.conf"
RELEASE_VARIABLE = "$sos_release"


# A file of a release; its owner is the installer's (the nginx user), so none is given.
ReleaseFile = BundleFile


def install_script() -> str:
    return (SCRIPTS / "install-release.sh").read_text()


def apply_script(settings: Mapping[str, str]) -> str:
    """The host-side script with its settings bound; plain values only (the bundle, which holds
    the private key, comes on stdin)."""
    return bind(SCRIPTS / "apply-release.sh", settings, renderer="configs/edge_release.py")


# The cluster placement: the release rides in the task definition (configs/edge_scripts/cluster-entrypoint.sh).
CLUSTER_RELEASE_VARIABLE = "SOS_EDGE_RELEASE"
CLUSTER_CACHE_DIR = "/tmp/nginx-cache"


def release_conf(release_id: str) -> str:
    """What install-release.sh writes into a release on the host: its id as $sos_release."""
    return f'geo $sos_release {{\n    default "{release_id}";\n}}\n'


def cluster_release(conf: str) -> str:
    """nginx.conf and its release.conf as a gzipped tar, base64, for a task's environment
    (a few kB: the ECS API takes a task definition of up to 64 KiB). Reproducible: the same
    configuration gives the same text, so an unchanged edge is no new task definition."""
    release_id = hashlib.sha256(conf.encode()).hexdigest()[:12]
    files = [ReleaseFile(CONF_FILE, conf), ReleaseFile(RELEASE_FILE, release_conf(release_id))]
    return base64.b64encode(gzip.compress(bundle(files), mtime=0)).decode()


def cluster_unbundle(text: str) -> dict[str, ReleaseFile]:
    """The files of a cluster_release (tests and reviews)."""
    return unbundle(base64.b64encode(gzip.decompress(base64.b64decode(text))).decode())


def cluster_entrypoint() -> str:
    return (SCRIPTS / "cluster-entrypoint.sh").read_text()
