"""One registry mechanism for environments, algorithms, mixers and agent networks.

An entry is a name, a one-line description, the object it names and any static facts about it. Unknown
names get a one-line ConfigError with the closest registered name. The object may be given as
"module:attribute", imported on first use: listing names, descriptions and facts imports nothing heavy.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from qmix.errors import ConfigError

T = TypeVar("T")


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    target: T
    description: str
    facts: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        """The object the entry names, imported now if it was registered as "module:attribute"."""
        return _resolve(self.target) if isinstance(self.target, str) else self.target

    def __getattr__(self, name: str) -> Any:  # facts read as attributes: entry.monotonic
        try:
            return self.facts[name]
        except KeyError:
            raise AttributeError(name) from None


class Registry(Generic[T]):
    """Named entries of one kind ("mixer", "algorithm", ...), in the order they were added."""

    def __init__(self, kind: str, derive: Callable[[Registry[T]], None] | None = None):
        """`derive(registry)`, if given, adds entries that follow from another registry (called before
        every lookup, so entries added there later still appear here)."""
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._derive = derive
        self._deriving = False

    def _refresh(self) -> None:
        if self._derive is not None and not self._deriving:
            self._deriving = True  # `derive` may look names up here itself
            try:
                self._derive(self)
            finally:
                self._deriving = False

    def add(self, name: str, target: T, description: str, **facts: Any) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._entries[name] = Entry(name, target, description, facts)
        return target

    def remove(self, name: str) -> None:
        """Take an entry out again (a plug-in unloaded, or one registered by a test)."""
        self._entries.pop(name, None)

    def register(self, name: str, description: str, **facts: Any):
        """Decorator form of `add`: `@MIXERS.register("qmix", "...")` above a class or function."""

        def decorate(target: T) -> T:
            return self.add(name, target, description, **facts)

        return decorate

    def entry(self, name: str) -> Entry[T]:
        self._refresh()
        if name not in self._entries:
            names = list(self._entries)
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(name, names)}: choose one of {', '.join(names)}"
            )
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def names(self) -> list[str]:
        self._refresh()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        self._refresh()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._refresh()
        return iter(list(self._entries.values()))

    def describe(self, group_by: str | None = None) -> list[str]:
        """One line per entry: name and description, aligned; with `group_by` (a fact), under a heading per
        value of that fact, in the order the values first appear (entries without it last, as "other")."""
        self._refresh()
        width = max((len(name) for name in self._entries), default=0)
        if group_by is None:
            return [f"{e.name:<{width}}  {e.description}" for e in self]
        groups: dict[str, list[Entry[T]]] = {}
        for entry in sorted(self, key=lambda e: group_by not in e.facts):
            groups.setdefault(str(entry.facts.get(group_by, "other")), []).append(entry)
        return [line for heading, entries in groups.items()
                for line in (f"{heading}:", *(f"  {e.name:<{width}}  {e.description}" for e in entries))]


@functools.cache
def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)
