"""Settings that explain themselves: frozen dataclasses whose every field carries a one-line doc.

A settings class belongs to its owner (the run loop, an algorithm, an environment). `setting(default,
doc)` declares a field; `coerce` turns a YAML or command-line value into the field's type with a clear
error; `describe` lists the fields with their docs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from typing import Any

import yaml

from qmix.errors import ConfigError


def setting(default: Any, doc: str, choices: tuple | None = None, speed_only: bool = False) -> Any:
    """A settings field with its one-line doc (and, for text settings, the allowed values). `speed_only`: the
    value changes how fast a run computes, not what it learns (the same loss of the same data), so a run
    folder made with another value is still the same run (a sweep resumes or skips it with its own value)."""
    return dataclasses.field(default=default, metadata={"doc": doc, "choices": choices, "speed_only": speed_only})


@dataclasses.dataclass(frozen=True)
class NoSettings:
    """For an owner that has no settings of its own."""

    def validate(self, config: Any) -> None:
        pass


def fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def doc(f: dataclasses.Field) -> str:
    return f.metadata.get("doc", "")


def speed_only_names(*groups: Any) -> set[str]:
    """The settings of these settings objects that change speed only (see `setting`)."""
    return {f.name for group in groups for f in dataclasses.fields(group) if f.metadata.get("speed_only")}


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_choices(instance: Any) -> None:
    """Every text setting with declared choices holds one of them."""
    for f in dataclasses.fields(instance):
        choices = f.metadata.get("choices")
        value = getattr(instance, f.name)
        check(not choices or value in choices,
              f"{f.name} must be one of {', '.join(map(str, choices or ()))}; got {value!r}")


def coerce(cls: type, key: str, value: Any, where: str) -> Any:
    """Turn a YAML or command-line value into the type of `cls`'s field `key`, or say clearly why not."""
    kind = typing.get_type_hints(cls)[key]
    optional = False
    if isinstance(kind, types.UnionType):  # e.g. `int | None`
        optional = type(None) in typing.get_args(kind)
        kind = next(t for t in typing.get_args(kind) if t is not type(None))
    if isinstance(value, str) and kind is not str:
        with contextlib.suppress(yaml.YAMLError):
            value = yaml.safe_load(value)  # "0.001" -> 0.001, "true" -> True, "10_000" -> 10000, "null" -> None
        if isinstance(value, str) and kind in (int, float):
            with contextlib.suppress(ValueError):  # YAML 1.1 reads "1e-3" as text; Python reads it as a number
                value = float(value.replace("_", "")) if kind is float else int(value.replace("_", ""))
    if value is None and optional:
        return None
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: '{key}' must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or float(value) != int(value):
            raise ConfigError(f"{where}: '{key}' must be a whole number{' or null' if optional else ''}, "
                              f"got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: '{key}' must be a number, got {value!r}")
        return float(value)
    if kind is str:
        return str(value)
    return value


def describe(instance: Any) -> list[tuple[str, Any, str]]:
    """(name, value, doc) for every field of a settings instance."""
    return [(f.name, getattr(instance, f.name), doc(f)) for f in dataclasses.fields(instance)]
