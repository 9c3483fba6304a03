"""Debian packages of another suite, unpacked into a directory tree with their whole dependency
closure (glibc included), to copy into a container's root filesystem.

Why: the PostgreSQL image installs pgBackRest 2.55.1 from Alpine 3.22 (testsupport/images.py,
APK_WORLD), and it backs up PostgreSQL 16. Bookworm's own pgbackrest is 2.45, which knows
PostgreSQL only up to 15, and apt.postgresql.org is not reachable here. Debian trixie ships the
same upstream release (`pgbackrest` 2.55.1-1), built against trixie's glibc 2.41, so it comes
with trixie's libc6. The tree is exactly the packages' files (usr/, etc/, var/): no usr-merge
links (bin -> usr/bin would replace a BusyBox root's bin/ when copied in), so the binaries'
interpreter /lib64/ld-linux-x86-64.so.2 is the tree's usr/lib64/ld-linux-x86-64.so.2.

Where from: http://deb.debian.org/debian <suite> main, resolved and downloaded by apt with a
configuration of its own under CACHE (sources, lists, archives and an empty dpkg status, so the
machine's package lists, archives and dpkg status are neither read nor written, and the whole
closure is downloaded). The suite's InRelease is verified against
/usr/share/keyrings/debian-archive-keyring.gpg: bookworm's debian-archive-keyring
(2023.3+deb12u2) already holds trixie's archive and release keys.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from testsupport.tools import require_tool

CACHE = Path(os.environ.get("SOS_DEB_CACHE", "/var/cache/storiesofsoftware/debs"))
MIRROR = "http://deb.debian.org/debian"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
STAMP = ".complete"
# What the machine's apt configuration says about reaching the mirror (a proxy) and trusting its
# clock; nothing else of it is read.
MACHINE_SETTINGS = ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Date",
                    "Acquire::Check-Valid-Until")


def package_tree(suite: str, packages: Sequence[str], *, without: Sequence[str] = ()) -> Path:
    """The unpacked closure of `packages` from `suite` (no Recommends), built once per machine.
    `without` names packages that dependencies ask for but that only maintainer scripts or
    administration tools use; apt is told they are installed, so neither they nor their own
    dependencies are fetched."""
    apt_get, dpkg_deb = require_tool("apt-get"), require_tool("dpkg-deb")
    digest = hashlib.sha256(repr((suite, sorted(packages), sorted(without))).encode()).hexdigest()[:12]
    root = CACHE / f"{suite}-{'+'.join(sorted(packages))}-{digest}"
    tree = root / "tree"
    CACHE.mkdir(parents=True, exist_ok=True)
    # Parallel test workers build the same tree once.
    with open(CACHE / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / STAMP).exists():
            return tree
        shutil.rmtree(root, ignore_errors=True)
        work = root / "apt"
        env = {**os.environ, "APT_CONFIG": str(_apt_config(work, suite, without)), "LC_ALL": "C"}
        subprocess.run([apt_get, "-qq", "update"], env=env, check=True)
        subprocess.run([apt_get, "-qq", "install", "--download-only", "-y", "--no-install-recommends", *packages],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        debs = sorted((work / "cache" / "archives").glob("*.deb"))
        for deb in debs:
            subprocess.run([dpkg_deb, "-x", str(deb), str(tree)], check=True)
        shutil.rmtree(work)  # the lists alone are tens of MB
        (root / STAMP).write_text("".join(f"{deb.name}\n" for deb in debs))
    return tree


def pgbackrest_tree() -> Path:
    """pgBackRest 2.55.1 and PostgreSQL 17's clients (psql, pg_isready, pg_dump, pg_dumpall: a
    newer pg_dump dumps a 16 server; no 16 client is packaged here). What only the packages'
    maintainer scripts and wrappers use is left out."""
    return package_tree("trixie", ["pgbackrest", "postgresql-client-17"],
                        without=["postgresql-common", "postgresql-client-common", "sensible-utils", "perl", "debconf"])


def _apt_config(work: Path, suite: str, without: Sequence[str]) -> Path:
    for sub in ("lists/partial", "cache/archives/partial", "parts", "trusted"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    (work / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {suite} main\n")
    # Version 0 with no Depends: satisfies an unversioned dependency and pulls in nothing.
    (work / "status").write_text("".join(
        f"Package: {name}\nStatus: install ok installed\nVersion: 0\nArchitecture: all\n"
        f"Maintainer: none\nDescription: stand-in\n\n" for name in without))
    machine = subprocess.run(["apt-config", "dump", *MACHINE_SETTINGS], capture_output=True, text=True,
                             check=True).stdout
    config = work / "apt.conf"
    # Dir::Etc::Parts and ::main point away from /etc/apt, whose hooks (docker-clean) and
    # foreign architectures are the machine's business. Downloads run as the calling user
    # (apt's _apt sandbox user cannot enter a root-only cache).
    config.write_text(machine + f"""
Dir::Etc::main "/dev/null";
Dir::Etc::Parts "{work}/parts";
Dir::Etc::SourceList "{work}/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::Etc::TrustedParts "{work}/trusted";
Dir::State "{work}";
Dir::State::Lists "{work}/lists";
Dir::State::status "{work}/status";
Dir::Cache "{work}/cache";
Dir::Log "{work}";
APT::Architecture "amd64";  // the images are amd64 ones
APT::Architectures {{ "amd64"; }};
Acquire::Languages "none";
APT::Sandbox::User "root";
""")
    return config


def nginx_tree() -> Path:
    """nginx with its stub_status module and mime.types (nginx-common), from forky (Debian testing:
    1.30.6 in December 2026): the edge's configuration needs `resolve` on upstream servers (open
    source since 1.27.3), which trixie's 1.26 lacks. Testing moves, so the version is whatever it
    has on the day the cache is filled. What only its service scripts use is left out."""
    return package_tree("forky", ["nginx"], without=NGINX_SCRIPTS_ONLY)


NGINX_SCRIPTS_ONLY = ["iproute2", "init-system-helpers", "debconf", "lsb-base", "procps", "adduser", "systemd",
                      "systemd-sysv"]
