"""YAML parsing that remembers where every value came from (line, column, path like ``permissions[3].when``).

Uses PyYAML's composer (node tree with marks) and builds plain Python values from it, so syntax errors,
duplicate keys and non-string keys become problems with positions instead of exceptions.

The composer is bounded (``_BoundedLoader``): it refuses nesting deeper than ``max_depth`` before the
recursion gets anywhere near Python's limit, and it counts every node as it is composed, an alias counting
the whole subtree it stands for. So an alias bomb is refused as soon as its expansion passes
``max_yaml_nodes``, after composing only its few hundred bytes of source (aliases are shared nodes, nothing
is expanded until the count allows it), and an alias inside its own anchor is refused instead of looping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from policy.limits import RulesetLimits
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


try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml
    _CParser = None  # type: ignore[assignment,misc]


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


_UNREADABLE = object()


class _LimitExceeded(Exception):
    def __init__(self, code: str, message: str, mark: yaml.Mark) -> None:
        super().__init__(message)
        self.code = code
        self.position = (mark.line + 1, mark.column + 1)


class _Bounds(Composer):
    """PyYAML's composer with a depth cap, an expanded-node budget and a recursive-alias check; mixed into
    a loader in front of the event source (libyaml's C parser, or PyYAML's own)."""

    limits: RulesetLimits
    depth: int
    sizes: dict[int, int]
    running: list[int]
    # Provided by the event source it is mixed with.
    check_event: Any
    peek_event: Any
    dispose: Any

    def bound(self, limits: RulesetLimits) -> None:
        self.limits = limits
        self.depth = 0
        self.sizes = {}  # id(node) -> nodes it stands for once expanded (finished nodes only)
        self.running = [0]  # expanded nodes so far under each collection being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is PyYAML's own error, raised below
                size = self.sizes.get(id(target))
                if size is None:
                    raise _LimitExceeded(
                        "E_YAML_RECURSIVE_ALIAS",
                        f"alias *{event.anchor} is inside the node its anchor names (a recursive alias)",
                        event.start_mark,
                    )
                self.count(size, event.start_mark)
            return super().compose_node(parent, index)
        start = self.peek_event().start_mark
        if self.depth >= self.limits.max_depth:
            raise _LimitExceeded(
                "E_YAML_TOO_DEEP", f"nested more than {self.limits.max_depth} levels deep", start
            )
        self.depth += 1
        self.running.append(0)
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
            inner = self.running.pop()
        self.sizes[id(node)] = inner + 1
        self.count(inner + 1, start)
        return node

    def count(self, size: int, mark: yaml.Mark) -> None:
        self.running[-1] += size
        if self.running[-1] > self.limits.max_yaml_nodes:
            raise _LimitExceeded(
                "E_YAML_TOO_MANY_NODES",
                f"more than {self.limits.max_yaml_nodes} YAML nodes once aliases are expanded",
                mark,
            )


class _PythonLoader(_Bounds, Reader, Scanner, Parser, Resolver):
    """Events from PyYAML's pure-Python scanner and parser (when libyaml is not installed)."""

    def __init__(self, source: str, limits: RulesetLimits) -> None:
        Reader.__init__(self, source)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.bound(limits)

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner looks ahead over every open flow collection for a possible key (quadratic in the
        # nesting), so deep [[[... is refused here, before the composer ever sees it.
        if self.flow_level >= self.limits.max_depth:
            raise _LimitExceeded(
                "E_YAML_TOO_DEEP", f"nested more than {self.limits.max_depth} levels deep", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)


if _CParser is not None:

    class _CLoader(_Bounds, _CParser, Resolver):
        """Events from libyaml's C scanner and parser."""

        def __init__(self, source: str, limits: RulesetLimits) -> None:
            _CParser.__init__(self, source)
            Composer.__init__(self)
            Resolver.__init__(self)
            self.bound(limits)


def _loader(source: str, limits: RulesetLimits) -> _Bounds:
    """A bounded loader: events from libyaml (about ten times faster than PyYAML's scanner) when present.

    Only libyaml's scanner and parser are used; nodes are composed by the bounded Python composer above
    (libyaml's own composer is recursive C and knows no budget)."""
    if _CParser is None:
        return _PythonLoader(source, limits)
    return _CLoader(source, limits)


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
                key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
                if key is _UNREADABLE:
                    continue
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
        value = self.scalar(node, path)
        return None if value is _UNREADABLE else value

    def scalar(self, node: yaml.Node, path: Path) -> Any:
        """A scalar's value, or ``_UNREADABLE`` after recording why it could not be read."""
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem("E_SYNTAX", str(exc).splitlines()[0], _pos(node), path)
        except ValueError as exc:  # e.g. an integer literal longer than Python converts (4300 digits)
            self.problem("E_VALUE", f"cannot read this value: {exc}", _pos(node), path)
        return _UNREADABLE


def parse_yaml(source: str, filename: str = "<ruleset>", limits: RulesetLimits | None = None) -> Parsed:
    """Parse ``source``; on a syntax error or a crossed limit ``data`` is None and ``problems`` says why."""
    builder = _Builder(filename)
    loader: _Bounds | None = None
    try:
        loader = _loader(source, limits or RulesetLimits())  # reads (and checks) the characters
        node = loader.get_single_node()
    except _LimitExceeded as exc:
        builder.problem(exc.code, str(exc), exc.position, ())
        return Parsed(None, builder.marks, builder.problems)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        opened = exc.context_mark
        if opened is not None and mark is not opened and exc.context:
            # PyYAML's pointer to where the construct began (the unclosed bracket or quote): the error
            # position is only where the parser gave up, often lines later.
            what = exc.context.removeprefix("while parsing ").removeprefix("a ").removeprefix("an ")
            message += f" (the {what} began at line {opened.line + 1}, column {opened.column + 1})"
        if "maximum nesting depth" in message:  # libyaml's own cap (1,000), should it come first
            builder.problem("E_YAML_TOO_DEEP", f"nested too deep ({message})", (line, col), ())
        else:
            builder.problem("E_SYNTAX", f"YAML syntax error: {message}", (line, col), ())
        return Parsed(None, builder.marks, builder.problems)
    except yaml.YAMLError as exc:
        builder.problem("E_SYNTAX", f"YAML error: {exc}", (1, 1), ())
        return Parsed(None, builder.marks, builder.problems)
    finally:
        if loader is not None:
            loader.dispose()
    if node is None:
        builder.problem("E_SYNTAX", "the ruleset is empty", (1, 1), ())
        return Parsed(None, builder.marks, builder.problems)
    return Parsed(builder.build(node, ()), builder.marks, builder.problems)
