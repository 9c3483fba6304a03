"""Registered inputs checked against the provider's Python SDK types: every key a property of the
resource's Args class (or of the nested Args class at that path), every value of a type the
property declares. A plain dict handed to a resource (rather than an Args object) reaches the
engine unchecked by the SDK; this is where a misspelt key or a string for a number shows."""

from __future__ import annotations

import collections.abc
import enum
import importlib
import typing
from typing import Any, ForwardRef

from offline.harness import UNKNOWN, Registration, ResourceRef, Secret

PACKAGES = {"aws": "pulumi_aws", "cloudflare": "pulumi_cloudflare", "command": "pulumi_command",
            "random": "pulumi_random", "tls": "pulumi_tls", "docker": "pulumi_docker"}


def _module_of(token: str) -> tuple[Any, str]:
    """`aws:ecs/taskDefinition:TaskDefinition` -> (pulumi_aws.ecs, "TaskDefinition")."""
    package, module, kind = token.split(":")
    path = module.split("/")[0]
    base = importlib.import_module(PACKAGES[package])
    return (base if path == "index" else importlib.import_module(f"{PACKAGES[package]}.{path}")), kind


def _args_class(module: Any, name: str) -> type | None:
    for where in (module, getattr(module, "_inputs", None)):
        if where is not None and hasattr(where, name):
            return getattr(where, name)
    return None


def _properties(cls: type) -> dict[str, property]:
    """Engine name (camelCase) -> property of an Args class."""
    out = {}
    for klass in reversed(cls.__mro__):
        for name, prop in vars(klass).items():
            if isinstance(prop, property) and prop.fget is not None:
                out[getattr(prop.fget, "_pulumi_name", name)] = prop
    return out


def _alternatives(annotation: Any) -> list[Any]:
    """The concrete types an annotation admits (Input[T] = T | Awaitable[T] | Output[T])."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return [a for arg in typing.get_args(annotation) for a in _alternatives(arg)]
    if origin is collections.abc.Awaitable or annotation is type(None):
        return []
    if isinstance(annotation, ForwardRef) and annotation.__forward_arg__.startswith("Output"):
        return []
    if isinstance(annotation, str):
        return [] if annotation.startswith("Output") else [ForwardRef(annotation)]
    return [annotation]


class Checker:
    def __init__(self, token: str) -> None:
        self.module, kind = _module_of(token)
        # The resource's own Args class lives in the resource's module; it is `<Kind>InitArgs`
        # where a nested type already took `<Kind>Args` (s3's BucketVersioning).
        own = importlib.import_module(getattr(self.module, kind).__module__)
        self.args = getattr(own, f"{kind}InitArgs", None) or getattr(own, f"{kind}Args", None)
        self.problems: list[str] = []

    def resource(self, inputs: dict[str, Any]) -> list[str]:
        if self.args is None:
            return [f"no Args class for {self.module.__name__}"]
        self._object(inputs, self.args, "")
        return self.problems

    def _object(self, value: dict[str, Any], cls: type, path: str) -> None:
        props = _properties(cls)
        for key, item in value.items():
            if key not in props:
                self.problems.append(f"{path}{key}: not an input of {cls.__name__}")
                continue
            annotation = props[key].fget.__annotations__.get("return", Any)  # type: ignore[union-attr]
            self._value(item, annotation, f"{path}{key}")

    def _value(self, value: Any, annotation: Any, path: str) -> None:
        if isinstance(value, Secret):
            value = value.value
        if value is None or value is UNKNOWN or isinstance(value, ResourceRef) or annotation is Any:
            return
        options = _alternatives(annotation)
        if not options or Any in options:
            return
        for option in options:
            if self._fits(value, option, path):
                return
        names = ", ".join(getattr(o, "__forward_arg__", getattr(o, "__name__", str(o))) for o in options)
        self.problems.append(f"{path}: {type(value).__name__} where the SDK takes {names}")

    def _fits(self, value: Any, option: Any, path: str) -> bool:
        origin = typing.get_origin(option)
        if isinstance(option, ForwardRef):
            cls = _args_class(self.module, option.__forward_arg__)
            if isinstance(cls, type) and issubclass(cls, enum.Enum):
                return value in {member.value for member in cls}
            if option.__forward_arg__.endswith("ArgsDict"):
                return False  # the TypedDict twin of an Args class, which is checked instead
            if cls is None or not isinstance(value, dict):
                return False
            self._object(value, cls, f"{path}.")
            return True
        if origin in (collections.abc.Sequence, list):
            if not isinstance(value, list):
                return False
            (item,) = typing.get_args(option) or (Any,)
            for i, element in enumerate(value):
                self._value(element, item, f"{path}[{i}]")
            return True
        if origin in (collections.abc.Mapping, dict):
            if not isinstance(value, dict):
                return False
            args = typing.get_args(option)
            for key, element in value.items():
                self._value(element, args[1] if len(args) == 2 else Any, f"{path}.{key}")
            return True
        if option is bool:
            return isinstance(value, bool)
        if option is int:
            return isinstance(value, int) and not isinstance(value, bool)
        if option is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if option is str:
            return isinstance(value, str)
        if option in (dict, typing.Mapping):
            return isinstance(value, dict)
        # A type this checker does not model (an enum, an archive): accepted.
        return True


def problems(registration: Registration) -> list[str]:
    return Checker(registration.type).resource(dict(registration.inputs))
