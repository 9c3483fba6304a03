"""SCRAM-SHA-256 verifiers, as PostgreSQL stores a role's password (configs/postgres.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac

SCRAM_ITERATIONS = 4096


def scram_verifier(password: str, role: str) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, as libpq's
    PQencryptPasswordConn computes it). `ALTER ROLE ... PASSWORD '<verifier>'` sets the password
    without the password being sent. The salt derives from role and password, so the same
    password gives the same verifier and an unchanged secret is no change. ASCII passwords only
    (SASLprep leaves them as they are; the generated ones are)."""
    if not password.isascii():
        raise ValueError(f"{role}: only ASCII passwords have a verifier computed here")
    return scram_with_salt(password, hashlib.sha256(f"sos-scram:{role}:{password}".encode()).digest()[:16])


def scram_with_salt(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(stored_key).decode()}:{b64(server_key).decode()}")
