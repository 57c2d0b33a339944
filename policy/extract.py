"""Per-group extraction plans: each fact path a compiled group reads, resolved once per evaluation.

One pass over the plan yields both the flat, typed message posted to durable_rules (see ``compile``) and a
snapshot of the facts a decision records (``facts.FactsRead``: nested only when looked at), so no path is
looked up twice and nothing else is copied. ``Extractor.read`` is that pass generated as straight-line code
for the plan; ``read_any`` the same loop written once (any mapping).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _encode_str
from math import isfinite
from typing import Any

from policy.compile import Bucket, Group
from policy.facts import MISSING, FactsRead, contains, copy_value, kind, matches, resolve

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

    __slots__ = ("head", "paths", "read", "readers")

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
        self.paths = tuple(reader.path for reader in self.readers)
        self.read: Callable[[Mapping[str, Any]], tuple[str, FactsRead]] = _generate(self)

    def read_any(self, facts: Mapping[str, Any]) -> tuple[str, FactsRead]:
        """(JSON message for durable_rules, the facts that were read), for any mapping; ``read``
        (generated for this plan) gives the same answer faster for plain dicts."""
        parts = [self.head]
        add = parts.append
        values = []
        for reader in self.readers:
            value = resolve(facts, reader.path)
            if value is MISSING:
                values.append(MISSING)
                for name, _, _ in reader.derived:
                    add(name + "0")
                continue
            values.append(value if type(value) in _IMMUTABLE else copy_value(value))
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
        return ",".join(parts) + "}", FactsRead(self.paths, tuple(values))

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


def _generate(extractor: Extractor) -> Callable[[Mapping[str, Any]], tuple[str, FactsRead]]:
    """``Extractor.read_any`` unrolled for one plan: straight-line Python over its paths (the hot path of
    every decision), generated once per bucket. Facts that are not plain dicts (or hold a namespace that is
    not one) take ``read_any``. Every name, property and needle is a constant of the function's namespace,
    never text in its source."""
    space: dict[str, Any] = {
        "MISSING": MISSING,
        "FactsRead": FactsRead,
        "PATHS": extractor.paths,
        "IMMUTABLE": _IMMUTABLE,
        "isfinite": isfinite,
        "copy_value": copy_value,
        "resolve": resolve,
        "contains": contains,
        "matches": matches,
        "enc": _encode_str,
        "number": _number,
        "other": Extractor._other,
        "slow": extractor.read_any,
        "HEAD": extractor.head,
    }
    lines = ["def read(facts):", "    if type(facts) is not dict:", "        return slow(facts)"]
    namespaces: dict[str, str] = {}
    for reader in extractor.readers:
        if reader.pair is not None and reader.pair[0] not in namespaces:
            var = namespaces[reader.pair[0]] = f"ns{len(namespaces)}"
            space[f"N_{var}"] = reader.pair[0]
            lines += [
                f"    {var} = facts.get(N_{var})",
                f"    if {var} is not None and type({var}) is not dict:",
                "        return slow(facts)",
            ]
    lines += ["    parts = [HEAD]", "    add = parts.append"]
    for i, reader in enumerate(extractor.readers):
        space[f"R{i}"] = reader
        space[f"P{i}"] = reader.path
        if reader.pair is not None:
            var = namespaces[reader.pair[0]]
            space[f"F{i}"] = reader.pair[1]
            lines += [
                f"    v = {var}.get(F{i}, MISSING) if {var} is not None else MISSING",
                "    if v is None or (type(v) is float and not isfinite(v)):",
                "        v = MISSING",
            ]
        else:
            lines.append(f"    v = resolve(facts, P{i})")
        lines += [
            f"    v{i} = v if type(v) in IMMUTABLE or v is MISSING else copy_value(v)",
            "    if v is not MISSING:",
        ]
        if reader.present is not None:
            space[f"X{i}"] = reader.present + "1"
            lines.append(f"        add(X{i})")
        lines.append("        t = type(v)")
        branches = []
        if reader.string is not None:
            space[f"S{i}"] = reader.string
            branches.append(("t is str", f"add(S{i} + enc(v))"))
        if reader.number is not None:
            space[f"Q{i}"] = reader.number
            branches.append(("t is int or t is float", f"add(Q{i} + number(v))"))
        if reader.boolean is not None:
            space[f"B{i}"] = reader.boolean
            branches.append(("t is bool", f"add(B{i} + ('1' if v else '0'))"))
        plain_types = "t is str or t is int or t is float or t is bool"
        for j, (test, action) in enumerate(branches):
            lines += [f"        {'if' if j == 0 else 'elif'} {test}:", f"            {action}"]
        # Anything else (subclasses of str/int/float/bool) is classified by ``facts.kind``, as in read_any.
        lines += [
            f"        {'elif' if branches else 'if'} not ({plain_types}):",
            f"            other(R{i}, v, add)",
        ]
        for j, (name, is_contains, needle) in enumerate(reader.derived):
            space[f"D{i}_{j}"] = name
            space[f"W{i}_{j}"] = needle
            test = "contains" if is_contains else "matches"
            lines.append(f"        add(D{i}_{j} + ('1' if {test}(v, W{i}_{j}) else '0'))")
        if reader.derived:
            lines.append("    else:")
            lines += [f"        add(D{i}_{j} + '0')" for j in range(len(reader.derived))]
    values = "".join(f"v{i}, " for i in range(len(extractor.readers)))
    lines.append(f'    return ",".join(parts) + "}}", FactsRead(PATHS, ({values}))')
    exec("\n".join(lines), space)  # our own template: every name and value is passed as a constant
    generated: Callable[[Mapping[str, Any]], tuple[str, FactsRead]] = space["read"]
    return generated


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
