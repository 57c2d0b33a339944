"""Fact values: how a dotted path is looked up and what kind of value it is.

Both the durable_rules path (``engine``) and the reference evaluator use these functions, so "missing",
"number", "string" and "bool" mean exactly the same thing on both sides:

* a path is missing when any segment is absent, or the value is ``None``;
* numbers (int/float, never bool) compare as IEEE doubles; NaN and infinities count as missing;
* booleans equal only booleans, strings only strings.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any, Final

from policy.regex import Regex


class _Missing:
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


def resolve(facts: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` or ``MISSING``."""
    current: Any = facts
    for segment in path:
        # Plain dicts first: an ABC isinstance check costs more than the lookup itself on the hot path.
        if type(current) is dict:
            current = current.get(segment, MISSING)
            if current is MISSING:
                return MISSING
        elif isinstance(current, Mapping) and segment in current:
            current = current[segment]
        else:
            return MISSING
    if current is None:
        return MISSING
    if isinstance(current, float) and not math.isfinite(current):
        return MISSING
    return current


def kind(value: Any) -> str | None:
    """``"n"`` number, ``"s"`` string, ``"b"`` bool, or None for anything else (lists, dicts, missing)."""
    t = type(value)
    if t is str:
        return "s"
    if t is int:
        return "n"
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int | float):
        return "n" if math.isfinite(value) else None
    if isinstance(value, str):
        return "s"
    return None


def as_number(value: Any) -> float:
    return float(value)


def scalar_equal(left: Any, right: Any) -> bool:
    """Typed equality: same kind and equal value (numbers as doubles)."""
    k = kind(left)
    if k is None or k != kind(right):
        return False
    if k == "n":
        return float(left) == float(right)
    return bool(left == right)


def present(value: Any) -> bool:
    return value is not MISSING


def subset(facts: Mapping[str, Any], paths: list[tuple[str, ...]]) -> dict[str, Any]:
    """The nested facts found at ``paths`` (missing ones left out): exactly what a ruleset read."""
    out: dict[str, Any] = {}
    for path in sorted(set(paths)):
        value = resolve(facts, path)
        if value is not MISSING:
            place(out, path, value)
    return out


_IMMUTABLE = frozenset({str, int, float, bool})


def place(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Put a copy of ``value`` at ``path`` in the nested dict ``out`` (paths placed in sorted order)."""
    node = out
    for segment in path[:-1]:
        nxt = node.get(segment)
        if not isinstance(nxt, dict):
            nxt = {}
            node[segment] = nxt
        node = nxt
    node[path[-1]] = copy_value(value)


class FactsRead(Mapping[str, Any]):
    """The facts a decision read, as ``subset`` lays them out (nested dicts, missing paths left out).

    A snapshot taken at decision time - each value captured, containers copied - that is laid out as nested
    dicts only when first looked at, so decisions whose facts nobody reads skip building them. Read-only;
    compares equal to the same nested dict; pickles as that dict. Not a dict: ``json.dumps`` wants
    ``dict(...)`` (``Decision.to_dict`` does that)."""

    __slots__ = ("_nested", "_paths", "_values")

    def __init__(self, paths: tuple[tuple[str, ...], ...], values: tuple[Any, ...]) -> None:
        self._paths = paths
        self._values = values  # MISSING where a path was missing; already copied (see ``copy_value``)
        self._nested: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        nested = self._nested
        if nested is None:
            nested = {}
            for path, value in zip(self._paths, self._values, strict=True):
                if value is MISSING:
                    continue
                node = nested
                for segment in path[:-1]:
                    inner = node.get(segment)
                    if not isinstance(inner, dict):
                        inner = node[segment] = {}
                    node = inner
                node[path[-1]] = value
            self._nested = nested
        return nested

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __repr__(self) -> str:
        return repr(self.as_dict())

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self.as_dict(),))


def copy_value(value: Any) -> Any:
    """A copy independent of the caller's object; scalars are immutable and returned as they are."""
    t = type(value)
    if t in _IMMUTABLE:
        return value
    # Lists of scalars (tags) are the common container; deepcopy's memo bookkeeping costs more than this.
    if t is list and all(type(item) in _IMMUTABLE for item in value):
        return value.copy()
    return copy.deepcopy(value)


def contains(value: Any, needle: Any) -> bool:
    """A list holding an element equal to ``needle``, or a string holding ``needle`` as a substring."""
    if isinstance(value, list | tuple):
        if type(needle) is str and needle not in value:
            return False  # no element == needle, so none is an equal string (the usual case, fast)
        return any(scalar_equal(item, needle) for item in value)
    if isinstance(value, str) and isinstance(needle, str):
        return needle in value
    return False


def matches(value: Any, regex: Regex) -> bool:
    """An RE2 search on a string value (see ``policy.regex``); anything else does not match."""
    return isinstance(value, str) and regex.search(value)
