"""YAML parsing that remembers where every value came from (line, column, path like ``permissions[3].when``).

Uses PyYAML's composer (node tree with marks) and builds plain Python values from it, so syntax errors,
duplicate keys and non-string keys become problems with positions instead of exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from policy.model import Problem

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """``("permissions", 3, "when", "all", 1)`` -> ``permissions[3].when.all[1]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "<root>"


@dataclass
class Marks:
    """Line/column (1-based) for values and for mapping keys, by path."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def at(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Position of ``path`` (its key when ``key``), falling back to the nearest known ancestor."""
        table = self.keys if key else self.values
        probe = path
        while True:
            if probe in table:
                return table[probe]
            if key and probe in self.values:
                return self.values[probe]
            if not probe:
                return (1, 1)
            probe = probe[:-1]
            table = self.values


@dataclass
class Parsed:
    data: Any
    marks: Marks
    problems: list[Problem]


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.marks = Marks()
        self.problems: list[Problem] = []
        self.constructor = SafeConstructor()

    def problem(self, code: str, message: str, pos: tuple[int, int], path: Path) -> None:
        self.problems.append(
            Problem(code, message, pos[0], pos[1], format_path(path), "error", self.filename)
        )

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.marks.values[path] = _pos(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problem("E_SYNTAX", "YAML merge keys (<<) are not supported", _pos(key_node), path)
                    continue
                key = (
                    self.constructor.construct_object(key_node, deep=True)
                    if isinstance(key_node, yaml.ScalarNode)
                    else None
                )
                if not isinstance(key, str):
                    # YAML 1.1 reads on/off/yes/no as booleans; say so instead of a vague type error.
                    self.problem(
                        "E_TYPE",
                        f"mapping key must be a string, got {key!r} (quote it)",
                        _pos(key_node),
                        path,
                    )
                    continue
                child = (*path, key)
                if key in out:
                    self.problem("E_DUPLICATE_KEY", f"duplicate key {key!r}", _pos(key_node), child)
                    continue
                self.marks.keys[child] = _pos(key_node)
                out[key] = self.build(value_node, child)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem("E_SYNTAX", str(exc).splitlines()[0], _pos(node), path)
            return None


def parse_yaml(source: str, filename: str = "<ruleset>") -> Parsed:
    """Parse ``source``; on a syntax error ``data`` is None and ``problems`` holds the error."""
    builder = _Builder(filename)
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        builder.problem("E_SYNTAX", f"YAML syntax error: {message}", (line, col), ())
        return Parsed(None, builder.marks, builder.problems)
    except yaml.YAMLError as exc:
        builder.problem("E_SYNTAX", f"YAML error: {exc}", (1, 1), ())
        return Parsed(None, builder.marks, builder.problems)
    if node is None:
        builder.problem("E_SYNTAX", "the ruleset is empty", (1, 1), ())
        return Parsed(None, builder.marks, builder.problems)
    return Parsed(builder.build(node, ()), builder.marks, builder.problems)
