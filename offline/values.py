"""The engine's wire values as the harness keeps them: secrets and unknowns stay visible
(`Secret`, `UNKNOWN`), resource references stay references; and the ways tests read them
(revealed, masked, plain strings only)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

import sdk_internals as sdk

UNKNOWN_SIG = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
MASK = "[secret]"


@dataclass(frozen=True)
class Secret:
    """A value the engine would treat as secret."""

    value: Any


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class ResourceRef:
    urn: str
    id: str


# Decoding the wire format, keeping secrets and unknowns visible
# --------------------------------------------------------------------------------------------


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        sig = value.get(sdk.SIG_KEY)
        if sig == sdk.SECRET_SIG:
            return Secret(decode(value.get("value")))
        if sig == sdk.RESOURCE_SIG:
            return ResourceRef(value.get("urn", ""), value.get("id", ""))
        if sig == sdk.ASSET_SIG:
            return {"asset": value.get("path") or value.get("text") or value.get("uri")}
        if sig == sdk.ARCHIVE_SIG:
            return {"archive": value.get("path") or value.get("uri") or "assets"}
        if sig == sdk.OUTPUT_VALUE_SIG:
            inner = decode(value.get("value", UNKNOWN_SIG))
            return Secret(inner) if value.get("secret") else inner
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    if value == UNKNOWN_SIG:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def decode_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    return decode(json_format.MessageToDict(struct))


def contains_secret(value: Any) -> bool:
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(contains_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secret(v) for v in value)
    return False


def unwrap(value: Any) -> Any:
    """The plain value, secrets revealed (for assertions on content)."""
    if isinstance(value, Secret):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def masked(value: Any) -> Any:
    """JSON-ready form: every secret becomes "[secret]", unknowns become "[unknown]"."""
    if isinstance(value, Secret):
        return MASK
    if value is UNKNOWN:
        return "[unknown]"
    if isinstance(value, ResourceRef):
        return {"urn": value.urn}
    if isinstance(value, dict):
        return {k: masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def iter_plain_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string leaf that is *not* under a secret marker, with its path."""
    if isinstance(value, Secret):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from iter_plain_strings(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_plain_strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def mask_text(text: str, secrets: set[str]) -> str:
    """Replace every known secret value, and each long line of a multi-line one, in text."""
    pieces: set[str] = set()
    for secret in secrets:
        if len(secret.strip()) >= 8:
            pieces.add(secret.strip())
        for line in secret.splitlines():
            if len(line.strip()) >= 8:
                pieces.add(line.strip())
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, MASK)
    return text
