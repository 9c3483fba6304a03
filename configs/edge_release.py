"""An edge release: the nginx configuration and its certificate files, shipped as one tar.

The edge container is never replaced for a configuration or certificate change: the files are a
release (configs/release.py), checked with `nginx -t` and loaded by SIGHUP. nginx runs
`-c current/nginx.conf`, and the configuration names its files relative to its own directory, so
one release is self-contained and a reload reads the new files together.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from pathlib import Path

from configs import release
from configs.file_bundle import BundleFile, bundle, bundle_text, unbundle

__all__ = ["ReleaseFile", "bundle", "bundle_text", "unbundle"]

SCRIPTS = Path(__file__).parent / "edge_scripts"
EDGE_DIR = "/etc/sos/edge"
CURRENT = f"{EDGE_DIR}/{release.CURRENT}"
CONF_FILE = "nginx.conf"
CERT_FILE = "tls/origin.crt"
KEY_FILE = "tls/origin.key"
CLIENT_CA_FILE = "tls/origin-pull-ca.crt"
# Written by install-release.sh into each release: `geo $sos_release { default "<id>"; }`.
RELEASE_FILE = "release.conf"
RELEASE_VARIABLE = "$sos_release"
_MARKER = 'geo $sos_release {\\n    default "%s";\\n}\\n'


# A file of a release; its owner is the installer's (the nginx user), so none is given.
ReleaseFile = BundleFile


def reloader(pid_file: str, health_url: str, cache_dir: str) -> release.Reloader:
    """`nginx -t` checks a release (it opens the cache, so the check gets one of its own); SIGHUP
    starts new workers on it while the old ones finish their requests; the health endpoint
    answers with the id of the release the workers run."""
    return release.Reloader(
        name="edge", directory=EDGE_DIR, check='nginx -t -q -c "$1/' + CONF_FILE + '"',
        marker_file=RELEASE_FILE, marker=_MARKER,
        reload=f'kill -HUP "$(cat {pid_file})"', probe=f"wget -q -O - {health_url}", scratch=(cache_dir,))


# The cluster placement: the release rides in the task definition (configs/edge_scripts/cluster-entrypoint.sh).
CLUSTER_RELEASE_VARIABLE = "SOS_EDGE_RELEASE"
CLUSTER_CACHE_DIR = "/tmp/nginx-cache"


def release_conf(release_id: str) -> str:
    """What install-release.sh writes into a release on the host: its id as $sos_release."""
    return release.marker(_MARKER, release_id)


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
