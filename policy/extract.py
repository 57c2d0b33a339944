"""Per-group extraction plans: each fact path a compiled group reads, resolved once per evaluation.

One pass over the plan yields both the flat, typed message posted to durable_rules (see ``compile``) and the
nested facts subset a decision records, so no path is looked up twice and nothing else is copied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _encode_str
from math import isfinite
from typing import Any

from policy.compile import Bucket, Group
from policy.facts import MISSING, contains, copy_value, kind, matches, place, resolve

_EXACT = 2**53
_IMMUTABLE = frozenset({str, int, float, bool})


@dataclass(frozen=True)
class PathReader:
    """The engine properties fed by one fact path: by kind, and the contains/matches it precomputes.

    Property names are pre-rendered as JSON keys (``"f3n":``) so the message is joined, not encoded.
    """

    path: tuple[str, ...]
    pair: tuple[str, str] | None  # (namespace, field) for two-segment paths: the inlined fast lookup
    present: str | None
    number: str | None
    string: str | None
    boolean: str | None
    derived: tuple[tuple[str, bool, Any], ...]  # (property, is_contains, needle or compiled pattern)


def _key(name: str | None) -> str | None:
    return None if name is None else f'"{name}":'


class Extractor:
    """Builds the engine message and the facts subset for one group in a single pass over its paths."""

    __slots__ = ("head", "readers")

    def __init__(self, group: Group, sid: str, bucket: Bucket | None = None) -> None:
        """Reads every path of ``group`` (the decision's facts subset); posts the properties of ``bucket``
        (the rules in scope) or, without one, of the whole group."""
        marker = 0 if bucket is None else bucket.marker
        self.head = "{" + _encode_str("sid") + ":" + _encode_str(sid) + f',"id":"f","k":{marker}'
        by_path: dict[tuple[str, ...], dict[str, Any]] = {path: {} for path in group.paths}
        for prop in group.props if bucket is None else bucket.props:
            by_path.setdefault(prop.path, {})[prop.kind] = prop.name
        derived: dict[tuple[str, ...], list[tuple[str, bool, Any]]] = {}
        for d in group.derived if bucket is None else bucket.derived:
            by_path.setdefault(d.path, {})
            derived.setdefault(d.path, []).append((f'"{d.name}":', d.op == "contains", d.value))
        # Sorted paths: the subset is built exactly as ``facts.subset`` builds it (the reference's way).
        self.readers = tuple(
            PathReader(
                path,
                (path[0], path[1]) if len(path) == 2 else None,
                _key(kinds.get("x")),
                _key(kinds.get("n")),
                _key(kinds.get("s")),
                _key(kinds.get("b")),
                tuple(derived.get(path, ())),
            )
            for path, kinds in sorted(by_path.items())
        )

    def read(self, facts: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """(JSON message for durable_rules, nested subset of the facts that were read)."""
        parts = [self.head]
        add = parts.append
        read: dict[str, Any] = {}
        plain = type(facts) is dict
        for reader in self.readers:
            pair = reader.pair
            if pair is not None and plain:
                namespace = facts.get(pair[0])
                if type(namespace) is dict:
                    value = namespace.get(pair[1], MISSING)
                    if value is None or (type(value) is float and not isfinite(value)):
                        value = MISSING
                else:
                    value = resolve(facts, reader.path)
            else:
                value = resolve(facts, reader.path)
            if value is MISSING:
                for name, _, _ in reader.derived:
                    add(name + "0")
                continue
            if pair is not None:
                target = read.get(pair[0])
                if target is None:
                    target = read[pair[0]] = {}
                target[pair[1]] = value if type(value) in _IMMUTABLE else copy_value(value)
            else:
                place(read, reader.path, value)
            if reader.present is not None:
                add(reader.present + "1")
            t = type(value)
            if t is str:
                if reader.string is not None:
                    add(reader.string + _encode_str(value))
            elif t is int or t is float:
                if reader.number is not None:
                    add(reader.number + _number(value))
            elif t is bool:
                if reader.boolean is not None:
                    add(reader.boolean + ("1" if value else "0"))
            else:
                self._other(reader, value, add)
            for name, is_contains, needle in reader.derived:
                hit = contains(value, needle) if is_contains else matches(value, needle)
                add(name + ("1" if hit else "0"))
        return ",".join(parts) + "}", read

    @staticmethod
    def _other(reader: PathReader, value: Any, add: Callable[[str], None]) -> None:
        """Subclasses of str/int/float/bool (rare): classified by ``facts.kind`` like everything else."""
        k = kind(value)
        if k == "s" and reader.string is not None:
            add(reader.string + _encode_str(value))
        elif k == "n" and reader.number is not None:
            add(reader.number + _number(float(value)))
        elif k == "b" and reader.boolean is not None:
            add(reader.boolean + ("1" if value else "0"))


def _number(value: int | float) -> str:
    """Whole numbers as integers (as ``compile`` encodes literals), others as JSON doubles."""
    if type(value) is int:
        return str(value) if -_EXACT < value < _EXACT else _double(float(value))
    number = float(value)
    if number.is_integer() and abs(number) < _EXACT:
        return str(int(number))
    return _double(number)


def _double(number: float) -> str:
    # durable_rules refuses a fact whose number has an exponent but no fraction ("1e+16", error 204),
    # which is how Python writes 10**16 or 1e-300; "1.0e+16" is the same double.
    text = float.__repr__(number)
    mantissa, exponent_mark, exponent = text.partition("e")
    if exponent_mark and "." not in mantissa:
        return f"{mantissa}.0e{exponent}"
    return text
