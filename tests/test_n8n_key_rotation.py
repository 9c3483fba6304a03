"""Rotating n8n's N8N_ENCRYPTION_KEY without losing a credential, for real: the pinned n8n's CLI
on PostgreSQL 16 initialised by the stack's own SQL. configs/runbook/n8n-rotate-encryption-key.sh
exports every credential decrypted with the old key into a private directory, imports them with
the new key (n8n encrypts them again) and checks that the new key decrypts them all; the file
is shredded, on a refusal too. Under the new key without that import, n8n cannot read one.

The script runs under BusyBox with only its applets on PATH, as in n8n's Alpine image, and under
Debian's sh where it refuses. Each n8n CLI run takes about 2.5 s (its first, with the database
migrations, about 4 s); the independent ones run side by side."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from configs import n8n as n8n_config
from configs import postgres as pg
from testsupport import apps
from testsupport.servers import pg_for_n8n
from testsupport.tools import ROOT, require_tool

SCRIPT = ROOT / "configs" / "runbook" / "n8n-rotate-encryption-key.sh"
N8N_PASSWORD = "n8n:rotate@pass/word%1"
# The generated key's alphabet (configs/secrets.py: 48 characters, no specials).
OLD_KEY = "OldKey0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
NEW_KEY = "NewKey0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
CREDENTIALS = [
    {"id": "rotateHeader0001", "name": "API key", "type": "httpHeaderAuth",
     "data": {"name": "X-Api-Key", "value": "s3cret-0123456789"}},
    {"id": "rotateBasic00002", "name": "Basic", "type": "httpBasicAuth",
     "data": {"user": "ops", "password": "pä$$ \"quoted\" \\ back`slash` ✓"}},
]
SHARING = 'SELECT "credentialsId", "projectId", role FROM shared_credentials ORDER BY 1'


def _n8n_argv() -> list[str]:
    return [shutil.which("node") or "node", str(apps.n8n_root() / "node_modules" / "n8n" / "bin" / "n8n")]


def _busybox_path(directory: Path) -> Path:
    """BusyBox's applets only (n8n's image is Alpine; node is called by its full path)."""
    busybox = require_tool("busybox")
    directory.mkdir()
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        (directory / applet).symlink_to(busybox)
    return directory


class Rig:
    """n8n's environment (the stack's, with this database) and its CLI, a fresh user folder each run."""

    def __init__(self, work: Path, port: int) -> None:
        self.work = work
        self.argv = _n8n_argv()
        self.env = {"PATH": os.environ["PATH"], **apps.N8N_IMAGE_ENV,
                    **n8n_config.n8n_env("https://n8n.example.com", "127.0.0.1"),
                    "DB_POSTGRESDB_PORT": str(port), "DB_POSTGRESDB_PASSWORD": N8N_PASSWORD}
        self.homes = itertools.count(1)  # next() is atomic: runs start from threads

    def home(self) -> Path:
        path = self.work / f"home-{next(self.homes)}"
        path.mkdir(mode=0o700)
        return path

    def n8n(self, key: str, *args: str, home: Path | None = None) -> subprocess.CompletedProcess:
        home = home or self.home()
        return subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=180,
                              cwd=self.work, env={**self.env, "N8N_ENCRYPTION_KEY": key,
                                                  "N8N_USER_FOLDER": str(home), "HOME": str(home)})

    def export(self, key: str, name: str) -> tuple[subprocess.CompletedProcess, Path]:
        out = self.work / name
        return self.n8n(key, "export:credentials", "--all", "--decrypted", f"--output={out}"), out

    def rotate(self, name: str, shell: list[str], n8n_cmd: str | None = None,
               **extra: str) -> tuple[subprocess.CompletedProcess, Path]:
        """The script, keys from files; `name`: its own N8N_ROTATE_TMPDIR (0700, as /dev/shm's
        subdirectory would be)."""
        tmpdir = self.work / name
        tmpdir.mkdir(mode=0o700)
        home = self.home()
        keys = {}
        for which, key in (("OLD", OLD_KEY), ("NEW", NEW_KEY)):
            keys[which] = home / f"{which.lower()}.key"
            keys[which].write_text(key + "\n")
        env = {**self.env, "HOME": str(home), "N8N_CMD": n8n_cmd or " ".join(self.argv),
               "N8N_OLD_ENCRYPTION_KEY_FILE": str(keys["OLD"]), "N8N_NEW_ENCRYPTION_KEY_FILE": str(keys["NEW"]),
               "N8N_ROTATE_TMPDIR": str(tmpdir), **extra}
        return subprocess.run([*shell, str(SCRIPT)], capture_output=True, text=True, timeout=300,
                              cwd=self.work, env=env), tmpdir


def _output(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def _by_id(path: Path) -> dict[str, dict]:
    return {c["id"]: {k: c[k] for k in ("name", "type", "data")} for c in json.loads(path.read_text())}


def test_the_rotation_keeps_every_credential_readable_under_the_new_key(tmp_path):
    database = pg_for_n8n(tmp_path, N8N_PASSWORD, init_sql=pg.init_sql())
    try:
        rig = Rig(tmp_path, database.port)
        # A second database of n8n's role, empty: where a wrong command would look.
        database.query(f'CREATE DATABASE n8n_empty OWNER "{pg.N8N_ROLE}"')
        plain = tmp_path / "plain.json"
        plain.write_text(json.dumps(CREDENTIALS))
        old_home = rig.home()
        with ThreadPoolExecutor(2) as pool:
            # Refused: zero credentials, from a command pointed at the wrong (empty) database.
            empty = pool.submit(rig.rotate, "refuse-empty", ["sh"],
                                n8n_cmd=f"env DB_POSTGRESDB_DATABASE=n8n_empty {' '.join(rig.argv)}",
                                N8N_EXPECTED_CREDENTIALS="2")
            created = rig.n8n(OLD_KEY, "import:credentials", f"--input={plain}", home=old_home)
            empty, empty_dir = empty.result()
        assert created.returncode == 0 and "Successfully imported 2 credentials." in created.stdout, _output(created)
        plain.unlink()
        assert empty.returncode == 2, _output(empty)
        assert "refusing: exported 0 credentials, the database holds 2" in empty.stderr
        sharing = database.query(SHARING, db=pg.N8N_DATABASE)

        with ThreadPoolExecutor(3) as pool:
            # The control: the new key without the re-import cannot read them.
            control = pool.submit(rig.export, NEW_KEY, "control.json")
            # The old key's settings file in the user folder (a Docker host's volume) and the new
            # key in the environment: n8n stops before it opens the database.
            mismatch = pool.submit(rig.n8n, NEW_KEY, "export:credentials", "--all", "--decrypted",
                                   f"--output={tmp_path / 'mismatch.json'}", home=old_home)
            # Refused: a count other than the database's (after the decrypted export was written).
            miscounted = pool.submit(rig.rotate, "refuse-count", ["sh"], N8N_EXPECTED_CREDENTIALS="3")
            (control, control_file), mismatch = control.result(), mismatch.result()
            miscounted, miscounted_dir = miscounted.result()

        assert control.returncode == 1 and not control_file.exists(), _output(control)
        # AES-CBC under a wrong key: a padding error, or (1 time in 256) bytes that are not JSON.
        assert 'Credentials could not be decrypted. The likely reason is that a different "encryptionKey" ' \
               "was used to encrypt the data." in _output(control) \
            or "Decrypted credentials data is not valid JSON." in _output(control), _output(control)
        assert mismatch.returncode == 1 and not (tmp_path / "mismatch.json").exists(), _output(mismatch)
        assert f"Mismatching encryption keys. The encryption key in the settings file {old_home}/.n8n/config " \
               "does not match the N8N_ENCRYPTION_KEY env var." in _output(mismatch)
        assert miscounted.returncode == 2, _output(miscounted)
        assert "refusing: exported 2 credentials, the database holds 3" in miscounted.stderr
        # The decrypted export (written before the refusal) and the user folders: gone.
        assert list(miscounted_dir.iterdir()) == [] and list(empty_dir.iterdir()) == []
        assert database.query(SHARING, db=pg.N8N_DATABASE) == sharing

        # The procedure, under BusyBox as inside n8n's image.
        busybox = _busybox_path(tmp_path / "alpine-bin")
        rotated, rotate_dir = rig.rotate("rotate", [str(busybox / "sh")], PATH=str(busybox),
                                         N8N_EXPECTED_CREDENTIALS="2")
        assert rotated.returncode == 0, _output(rotated)
        assert "re-encrypted 2 credentials" in rotated.stderr
        assert list(rotate_dir.iterdir()) == []

        # The new key reads them (before the script it could not: the control).
        after, after_file = rig.export(NEW_KEY, "after.json")
        assert after.returncode == 0, _output(after)
        assert _by_id(after_file) == {c["id"]: {k: c[k] for k in ("name", "type", "data")} for c in CREDENTIALS}
        # Same ids, same owner (the import kept each credential's sharing).
        assert database.query(SHARING, db=pg.N8N_DATABASE) == sharing
    finally:
        database.destroy()


def test_the_script_passes_shellcheck():
    result = subprocess.run([require_tool("shellcheck"), "--shell=sh", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
