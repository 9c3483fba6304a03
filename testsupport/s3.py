"""An S3 server for the backup drill and the restore benchmark: moto (plain HTTP, in memory) on
loopback with one bucket, behind a TLS proxy that can be cut.

pgBackRest speaks HTTPS only, and moto's own TLS closes without close_notify, which OpenSSL 3 in
pgBackRest rightly treats as a truncated response: hence nginx in front.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from testsupport.servers import free_port, moto_server, port_open, wait_for
from testsupport.tools import require_tool

REGION = "us-east-1"


class S3Endpoint:
    """moto behind a TLS-terminating nginx. `cut()` stops nginx, which drops every connection and
    refuses new ones; `restore()` starts it again, and moto keeps its objects throughout. The
    certificate names 127.0.0.1 (`ca_file`), so clients that verify TLS (curl) can."""

    def __init__(self, moto_port: int, work: Path) -> None:
        from testsupport.edge import nginx_binary

        self.binary = nginx_binary()
        self.port = free_port()
        self.work = work
        self.ca_file = work / "s3.crt"
        work.chmod(0o755)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", work / "s3.key", "-out", self.ca_file, "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        (work / "nginx.conf").write_text(f"""
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{}}
http {{
    access_log off;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_certificate {work}/s3.crt;
        ssl_certificate_key {work}/s3.key;
        location / {{
            proxy_pass http://127.0.0.1:{moto_port};
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
        }}
    }}
}}
""")
        self.proc: subprocess.Popen | None = None
        self.restore()

    def _up(self) -> bool:
        return port_open(self.port)

    def restore(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.work / "nginx.conf"), "-p", str(self.work),
                                      "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        assert wait_for(self._up, 10)

    def cut(self) -> None:
        assert self.proc is not None
        # TERM is nginx's fast shutdown: workers drop their connections at once. (KILL would
        # leave the workers serving as orphans.)
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None
        assert wait_for(lambda: not self._up(), 5)


class MotoS3:
    """moto's server with `bucket` created, and its TLS endpoint. Any key pair is accepted: moto
    runs without IAM here (test_backup_jobs checks the signatures against moto's IAM)."""

    def __init__(self, work: Path, bucket: str = "sos-backups", key: str = "drill", secret: str = "drill") -> None:
        import boto3

        self.bucket, self.key, self.secret = bucket, key, secret
        (work / "moto").mkdir(parents=True, exist_ok=True)
        (work / "tls").mkdir(exist_ok=True)
        self.moto, self.moto_port = moto_server(require_tool("moto_server"), work / "moto" / "moto.log")
        try:
            # Set-up and checks talk to moto directly: the TLS hop is for what the platform runs.
            self.direct = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.moto_port}", region_name=REGION,
                                       aws_access_key_id=key, aws_secret_access_key=secret)
            self.direct.create_bucket(Bucket=bucket)
            self.endpoint = S3Endpoint(self.moto_port, work / "tls")
        except BaseException:
            self._stop_moto()
            raise

    @property
    def url(self) -> str:
        """The bucket's URL through the TLS endpoint, path style (the offsite job's SOS_S3_URL)."""
        return f"https://127.0.0.1:{self.endpoint.port}/{self.bucket}"

    def client(self) -> Any:
        """boto3 through the TLS endpoint, verifying its certificate: what `aws s3` on a host does."""
        import boto3

        return boto3.client("s3", endpoint_url=f"https://127.0.0.1:{self.endpoint.port}", region_name=REGION,
                            aws_access_key_id=self.key, aws_secret_access_key=self.secret,
                            verify=str(self.endpoint.ca_file))

    def bytes_under(self, prefix: str) -> tuple[int, int]:
        """(objects, bytes) stored under `prefix`."""
        count = size = 0
        for page in self.direct.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                count += 1
                size += item["Size"]
        return count, size

    def _stop_moto(self) -> None:
        self.moto.terminate()
        self.moto.wait(timeout=10)

    def close(self) -> None:
        if self.endpoint.proc:
            self.endpoint.cut()
        self._stop_moto()
