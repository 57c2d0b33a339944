"""Compile a validated Ruleset to durable_rules ruleset definitions (pure data; no engine calls here).

How facts reach durable_rules: every fact path a section reads becomes a few flat, typed properties
(``f3x`` present, ``f3n`` number, ``f3s`` string, ``f3b`` bool as 1/0), so the C engine's loose comparisons
(``"3" < 5`` is true there, ``true == 1`` too) never leak into decisions. ``contains`` and ``matches``
cannot be expressed on flat scalars, so they are precomputed into 1/0 properties (``c0``, ``c1``...);
every comparison, conjunction, disjunction and negation is matched by durable_rules itself.

Engine limits of durable_rules 2.0.28 (src/rules/rete.c, events.c, state.h) that this module respects:
  * 255 properties per posted object (MAX_OBJECT_PROPERTIES);
  * 15 and/or groups per rule (MAX_SEQUENCE_EXPRESSIONS 32, two entries each);
  * per alpha node: 512 hashed children (a full table makes ``findAlpha`` loop forever), 128 ``$nex``/or
    children (NEXT_LIST_LENGTH), 256 rule links (BETA_LIST_LENGTH);
  * 64 alpha nodes on the evaluation stack (MAX_STACK_SIZE) - grows with rules matching at once.
A section whose rules would break a per-node or stack limit, or that has more than ``MAX_RULES_PER_SHARD``
rules, is split across several engine rulesets ("shards"); a single rule that cannot fit alone, or too
many properties, is a validation error.

Scope index (the decide group): a decision only ever needs the permission rules whose actors, actions and
stages admit the decision's actor, action type and stage. The group is compiled into "buckets", one per
distinct set of rules some scope key admits (the key: each scope fact's value when a rule names it, else
``None`` for "a value no rule names"). A bucket holds copies of its rules without the scope conditions its
key already decided, each starting with the bucket's marker (``k == marker``, posted with the message). Each
bucket has engine rulesets of its own (one, unless it is larger than a shard): durable_rules finds the next
fired rule by scanning every rule of the ruleset from the first, once per fired rule and once more, so a
bucket sharing its ruleset with others would pay for their rules on every decision (``SHARD_ALONE_FROM``). A decision evaluates one bucket and posts only the
facts its rules read, so its cost follows the rules in scope, not the ruleset's size. A rule is copied into
every bucket whose key it admits (each copy costs engine memory, ~20 KB), so the finest key (actor, action,
stage) is used only while the copies stay within ``MAX_SCOPE_COPIES`` times the rules (plus an allowance);
otherwise a coarser one ((actor, action), then (action), then none), whose remaining scope conditions stay
in the rules. Handoff rules change a decision only for the actor ``ai``, so they are copied only where the
actor can be ``ai``; the ``handoff`` group matches them for any actor (``PolicyEngine.handoff``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy.facts import kind
from policy.model import (
    AllOf,
    Condition,
    EscalationRule,
    HandoffRule,
    Leaf,
    NotOf,
    PermissionRule,
    RoutingRule,
    Ruleset,
)

MAX_PROPERTIES = 250  # of 255; three are taken by sid, id and the marker
MAX_GROUPS_PER_RULE = 15
MAX_HASH_CHILDREN = 400
MAX_LIST_CHILDREN = 120
MAX_BETA_LINKS = 250
MAX_STACK = 60
MAX_RULES_PER_SECTION = 2000
# create_ruleset grows faster than linearly with a shard's rules and runs under the engine lock (measured on
# 2,000 three-condition rules: 100-rule shards take about 1-3 ms each, the 354-rule shards the alpha-network
# limits alone allow about 10 ms), so shards stay small enough that no creation holds the lock for long.
# The price: one more assert/retract per 100 rules in each evaluation (about 30 us at 2,000 rules).
MAX_RULES_PER_SHARD = 100
# A shard holding this many rules takes no further bucket: the engine looks for fired rules by scanning every
# rule of the engine ruleset from its first (``getNextResultInState``, once per fired rule and once more), so
# a bucket sharing its ruleset with others pays for their rules on every decision.
SHARD_ALONE_FROM = 1
MARKER = "k"
PRIMER = "pr"
# Copies of rules across the scope buckets of a group: at most this many times its rules (+ the allowance),
# and never more than MAX_EXTRA_COPIES beyond one copy per rule (each copy is ~20 KB of engine memory).
MAX_SCOPE_COPIES = 3
SCOPE_COPY_ALLOWANCE = 128
MAX_EXTRA_COPIES = 1024
SCOPE_PATHS: dict[str, tuple[str, ...]] = {
    "actors": ("action", "actor"),
    "actions": ("action", "type"),
    "stages": ("ticket", "stage"),
}
# Keys tried, finest first: the first whose copies fit the budget is the group's index.
SCOPE_KEYS: tuple[tuple[str, ...], ...] = (
    ("actors", "actions", "stages"),
    ("actors", "actions"),
    ("actions",),
    (),
)

Json = dict[str, Any]
SectionRule = PermissionRule | RoutingRule | EscalationRule | HandoffRule


@dataclass(frozen=True)
class Prop:
    name: str
    path: tuple[str, ...]
    kind: str  # x (present), n, s, b


@dataclass(frozen=True)
class Derived:
    name: str
    path: tuple[str, ...]
    op: str  # contains | matches
    value: Any  # the needle for contains, the compiled ``Regex`` for matches


@dataclass(frozen=True)
class Shard:
    definition: str  # JSON text for durable_rules_engine.create_ruleset
    names: dict[str, str]  # durable rule name -> ruleset rule id


@dataclass(frozen=True)
class Bucket:
    """The rules one scope key admits: the group's shards holding them (indexes), their marker (every copy
    of a rule in this bucket starts with ``k == marker``), and the properties (a subset of the group's, with
    the group's names) and fact paths they read: all that is posted for a decision in this bucket."""

    marker: int
    props: tuple[Prop, ...]
    derived: tuple[Derived, ...]
    shards: tuple[int, ...]
    paths: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Group:
    """One independently evaluated set of rules (a decision, routing, escalations).

    ``scope`` names the scope facts of the index (``SCOPE_PATHS`` keys); ``scope_values`` the values rules
    name for each; ``index`` maps a key (one value or None per scope fact) to its bucket. Without scope
    facts the group is one bucket under the key ``()``."""

    name: str
    props: tuple[Prop, ...]
    derived: tuple[Derived, ...]
    shards: tuple[Shard, ...]
    buckets: tuple[Bucket, ...]
    paths: tuple[tuple[str, ...], ...]
    order: dict[str, int]
    scope: tuple[str, ...] = ()
    scope_values: tuple[frozenset[str], ...] = ()
    index: dict[tuple[str | None, ...], int] = field(default_factory=dict)


@dataclass(frozen=True)
class CompiledRuleset:
    digest: str
    groups: dict[str, Group]


class CompileError(ValueError):
    def __init__(self, code: str, message: str, path: tuple[str | int, ...]) -> None:
        super().__init__(message)
        self.code = code
        self.path = path


# -- conditions to durable_rules expressions ---------------------------------------------------------


@dataclass
class _Props:
    props: dict[tuple[tuple[str, ...], str], Prop] = field(default_factory=dict)
    derived: dict[tuple[tuple[str, ...], str, str], Derived] = field(default_factory=dict)
    path_index: dict[tuple[str, ...], int] = field(default_factory=dict)
    paths: dict[tuple[str, ...], None] = field(default_factory=dict)

    def prop(self, path: tuple[str, ...], k: str) -> str:
        self.paths[path] = None
        key = (path, k)
        if key not in self.props:
            index = self.path_index.setdefault(path, len(self.path_index))
            self.props[key] = Prop(f"f{index}{k}", path, k)
        return self.props[key].name

    def derive(self, path: tuple[str, ...], op: str, value: Any) -> str:
        self.paths[path] = None
        key = (path, op, repr(value))
        if key not in self.derived:
            self.derived[key] = Derived(f"c{len(self.derived)}", path, op, value)
        return self.derived[key].name


def _enc(value: Any) -> tuple[str, Any]:
    """(kind, encoded value) of a literal: numbers normalised so equal numbers share one alpha node."""
    k = kind(value)
    if k == "b":
        return "b", 1 if value else 0
    if k == "n":
        number = float(value)
        return "n", int(number) if number.is_integer() and abs(number) < 2**53 else number
    return "s", value


def _unique(values: Iterable[Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for value in values:
        encoded = _enc(value)
        if encoded not in out:
            out.append(encoded)
    return out


def _and(items: list[Json]) -> Json:
    return _join("$and", items)


def _or(items: list[Json]) -> Json:
    return _join("$or", items)


def _join(op: str, items: list[Json]) -> Json:
    flat: list[Json] = []
    for item in items:
        if len(item) == 1 and op in item:
            flat.extend(item[op])
        else:
            flat.append(item)
    return flat[0] if len(flat) == 1 else {op: flat}


_FLIP = {"lt": "$gte", "lte": "$gt", "gt": "$lte", "gte": "$lt"}


class _Translator:
    def __init__(self, props: _Props) -> None:
        self.p = props

    def condition(self, cond: Condition, negate: bool = False) -> Json:
        if isinstance(cond, Leaf):
            return self.leaf(cond, negate)
        if isinstance(cond, NotOf):
            return self.condition(cond.item, not negate)
        parts = [self.condition(item, negate) for item in cond.items]
        conjunctive = isinstance(cond, AllOf) != negate
        return _and(parts) if conjunctive else _or(parts)

    def eq_any(self, path: tuple[str, ...], values: Iterable[Any]) -> Json:
        return _or([{self.p.prop(path, k): v} for k, v in _unique(values)])

    def not_eq_any(self, path: tuple[str, ...], values: Iterable[Any]) -> Json:
        by_kind: dict[str, list[Any]] = {}
        for k, v in _unique(values):
            by_kind.setdefault(k, []).append(v)
        parts = []
        for k, vs in by_kind.items():
            name = self.p.prop(path, k)
            parts.append(_or([{"$nex": {name: 1}}, _and([{"$neq": {name: v}} for v in vs])]))
        return _and(parts)

    def leaf(self, leaf: Leaf, negate: bool) -> Json:
        path, op, value = leaf.fact_path, leaf.op, leaf.value
        if op == "exists":
            return {("$ex" if bool(value) != negate else "$nex"): {self.p.prop(path, "x"): 1}}
        if op in ("eq", "in"):
            values = value if op == "in" else (value,)
            return self.not_eq_any(path, values) if negate else self.eq_any(path, values)
        if op in ("ne", "not_in"):
            values = value if op == "not_in" else (value,)
            present = self.p.prop(path, "x")
            if negate:
                return _or([{"$nex": {present: 1}}, self.eq_any(path, values)])
            return _and([{"$ex": {present: 1}}, self.not_eq_any(path, values)])
        if op in _FLIP:
            name = self.p.prop(path, "n")
            _, number = _enc(value)
            if negate:
                return _or([{"$nex": {name: 1}}, {_FLIP[op]: {name: number}}])
            return {f"${op}": {name: number}}
        if op == "contains":
            return {self.p.derive(path, op, value): 0 if negate else 1}
        if op == "matches":
            if leaf.regex is None:
                raise ValueError(f"matches leaf at {leaf.path or leaf.fact} has no compiled pattern")
            return {self.p.derive(path, op, leaf.regex): 0 if negate else 1}
        raise ValueError(f"unknown operator {op!r}")


def _scope(values: tuple[str, ...] | None, path: tuple[str, ...]) -> Leaf | None:
    if values is None:
        return None
    return Leaf(".".join(path), "in", tuple(values), "")


def rule_parts(rule: SectionRule, decided: tuple[str, ...] = ()) -> list[Condition]:
    """The conditions a rule's match requires, scope first (they are shared and mutually exclusive);
    ``decided`` names scope facts a bucket's key has already decided, left out."""
    parts: list[Condition] = []
    if isinstance(rule, PermissionRule):
        for values, path in (
            (None if "actions" in decided else rule.actions, ("action", "type")),
            (None if "actors" in decided else rule.actors, ("action", "actor")),
            (None if "stages" in decided else rule.stages, ("ticket", "stage")),
        ):
            leaf = _scope(values, path)
            if leaf is not None:
                parts.append(leaf)
    if isinstance(rule, EscalationRule):
        leaf = _scope(rule.stages, ("ticket", "stage"))
        if leaf is not None:
            parts.append(leaf)
        parts.append(Leaf("ticket.seconds_in_stage", "gte", rule.after.total_seconds(), ""))
    if rule.when is not None:
        parts.append(rule.when)
    return parts


def rule_expression(
    rule: SectionRule, translator: _Translator, decided: tuple[str, ...] = (), bucket: int = 0
) -> Json:
    """The rule as a durable_rules expression; the marker (``k``, the bucket's number) comes first, so the
    alpha network's root sends a message only into the rules of its own bucket."""
    return _and([{MARKER: bucket}, *(translator.condition(part) for part in rule_parts(rule, decided))])


def count_groups(expr: Json) -> int:
    total = 0
    for key, value in expr.items():
        if key in ("$and", "$or"):
            total += 1 + sum(count_groups(item) for item in value)
    return total


# -- a model of durable_rules' alpha network, to keep every shard inside the engine's limits ------------


class _Node:
    __slots__ = ("beta", "hashed", "listed")

    def __init__(self) -> None:
        self.hashed: dict[tuple[str, str, str], int] = {}
        self.listed: list[int] = []
        self.beta = 0


class _Network:
    """Mirrors rete.c createAlpha/findAlpha: nodes shared by (parent, property, operator, value)."""

    def __init__(self) -> None:
        self.nodes = [_Node()]
        self.list_keys: dict[tuple[int, str, str], int] = {}

    def _new(self) -> int:
        self.nodes.append(_Node())
        return len(self.nodes) - 1

    def add(self, expr: Json, parent: int) -> int:
        ((key, value),) = expr.items()
        if key == "$and":
            current = parent
            for item in value:
                current = self.add(item, current)
            return current
        if key == "$or":
            forward = self._new()
            for item in value:
                end = self.add(item, parent)
                self.nodes[end].listed.append(forward)
            return forward
        if key.startswith("$"):
            ((prop, literal),) = value.items()
            op = key
        else:
            prop, literal, op = key, value, "$eq"
        sig = json.dumps(literal)
        if op == "$nex":
            list_key = (parent, prop, sig)
            if list_key not in self.list_keys:
                child = self._new()
                self.nodes[parent].listed.append(child)
                self.list_keys[list_key] = child
            return self.list_keys[list_key]
        node = self.nodes[parent]
        hkey = (prop, op, sig)
        if hkey not in node.hashed:
            node.hashed[hkey] = self._new()
        return node.hashed[hkey]

    def add_rule(self, expr: Json) -> None:
        self.nodes[self.add(expr, 0)].beta += 1

    def fits(self) -> bool:
        for node in self.nodes:
            if len(node.hashed) > MAX_HASH_CHILDREN or len(node.listed) > MAX_LIST_CHILDREN:
                return False
            if node.beta > MAX_BETA_LINKS:
                return False
        return self.stack_bound() <= MAX_STACK

    def stack_bound(self) -> int:
        """Upper bound on the evaluation stack: children that can match at once, along the worst path.

        Computed without recursion (a long ``all`` is a chain of as many nodes as it has conditions)."""
        heights: dict[int, int] = {}
        todo = [0]
        while todo:
            index = todo[-1]
            if index in heights:
                todo.pop()
                continue
            node = self.nodes[index]
            children = [*node.hashed.values(), *node.listed]
            missing = [c for c in children if c not in heights]
            if missing:
                todo.extend(missing)
                continue
            todo.pop()
            props_with_eq: set[str] = set()
            at_once = len(node.listed)
            for prop, op, _ in node.hashed:
                if op == "$eq":
                    props_with_eq.add(prop)
                else:
                    at_once += 1
            at_once += len(props_with_eq)  # one value per property: at most one $eq child matches
            tallest = max((heights[c] for c in children), default=0)
            heights[index] = max(1, at_once - 1 + tallest) if children else 1
        return heights[0]


def _fits(expressions: Sequence[Json]) -> bool:
    network = _Network()
    for expr in expressions:
        network.add_rule(expr)
    return network.fits()


def _pack(expressions: Sequence[Json]) -> list[tuple[int, int]]:
    """Split consecutive rules into the fewest shards whose networks fit (largest prefix each time) and
    that hold at most ``MAX_RULES_PER_SHARD`` rules."""
    shards: list[tuple[int, int]] = []
    start = 0
    while start < len(expressions):
        end = min(len(expressions), start + MAX_RULES_PER_SHARD)
        if _fits(expressions[start:end]):  # the usual case: a full shard fits, no search needed
            shards.append((start, end))
            start = end
            continue
        good, step = start + 1, 1
        while good + step <= end and _fits(expressions[start : good + step]):
            good += step
            step *= 2
        low, high = good, min(end, good + step)  # prefix [start:good] fits, [start:high] may not
        while low < high:
            mid = (low + high + 1) // 2
            if _fits(expressions[start:mid]):
                low = mid
            else:
                high = mid - 1
        shards.append((start, low))
        start = low
    return shards


# -- sections ------------------------------------------------------------------------------------------


def _section_rules(ruleset: Ruleset, group: str) -> list[tuple[str, SectionRule]]:
    if group == "decide":
        return [("p", r) for r in ruleset.permissions] + [("h", r) for r in ruleset.handoff]
    if group == "handoff":
        return [("h", r) for r in ruleset.handoff]
    if group == "route":
        return [("r", r) for r in ruleset.routing]
    return [("e", r) for r in ruleset.escalations]


GROUP_NAMES = ("decide", "route", "escalate", "handoff")


def compile_group(ruleset: Ruleset, group: str) -> Group:
    props = _Props()
    translator = _Translator(props)
    if group == "decide":
        # A decision always reads the scope facts, even when no rule is scoped.
        for path in SCOPE_PATHS.values():
            props.paths[path] = None
    rules = _section_rules(ruleset, group)
    for _, rule in rules:  # every rule whole (scope included), so the limits do not depend on the index
        expr = rule_expression(rule, translator)
        if count_groups(expr) > MAX_GROUPS_PER_RULE:
            raise CompileError(
                "E_ENGINE_LIMIT",
                f"rule {rule.id!r} compiles to {count_groups(expr)} and/or groups; durable_rules allows "
                f"{MAX_GROUPS_PER_RULE} per rule (simplify the condition or split the rule)",
                _path_of(rule),
            )
        if not _fits([expr]):
            raise CompileError(
                "E_ENGINE_LIMIT",
                f"rule {rule.id!r} is too wide for durable_rules' alpha network (too many alternatives "
                "that can match at once); split it into several rules",
                _path_of(rule),
            )
    if len(props.props) + len(props.derived) > MAX_PROPERTIES:
        raise CompileError(
            "E_ENGINE_LIMIT",
            f"the {group} rules read {len(props.props) + len(props.derived)} engine properties; durable_rules "
            f"allows {MAX_PROPERTIES} per evaluation (read fewer distinct facts or use fewer contains/matches)",
            (_SECTION_OF[group],),
        )
    scope, values, keys = _scope_index([rule for _, rule in rules]) if group == "decide" else ((), (), {})
    if not keys:
        keys = {(): (1 << len(rules)) - 1}
    index: dict[tuple[str | None, ...], int] = {}
    by_members: dict[int, int] = {}
    chosen: list[list[int]] = []
    for key, members in keys.items():
        if members not in by_members:
            by_members[members] = len(chosen)
            chosen.append([i for i in range(len(rules)) if members >> i & 1])
        index[key] = by_members[members]
    shards, buckets = _pack_buckets(rules, chosen, scope, props)
    return Group(
        name=group,
        props=tuple(props.props.values()),
        derived=tuple(props.derived.values()),
        shards=shards,
        buckets=buckets,
        paths=tuple(props.paths),
        order={rule.id: i for i, (_, rule) in enumerate(rules)},
        scope=scope,
        scope_values=values,
        index=index,
    )


def _scope_index(
    rules: Sequence[SectionRule],
) -> tuple[tuple[str, ...], tuple[frozenset[str], ...], dict[tuple[str | None, ...], int]]:
    """The finest scope key whose buckets copy rules within the budget: (scope facts, the values rules
    name for each, key -> the rules it admits as a bit set). A key component is a named value or None."""
    budget = scope_copy_budget(len(rules))
    every = (1 << len(rules)) - 1
    for scope in SCOPE_KEYS:
        if not scope:
            break
        named: list[list[str]] = []
        admits: list[dict[str | None, int]] = []
        for dim in scope:
            scopes = [_scope_of(rule, dim) for rule in rules]
            dim_values = sorted({v for values in scopes if values is not None for v in values})
            unscoped = sum(1 << i for i, values in enumerate(scopes) if values is None)
            table: dict[str | None, int] = {None: unscoped}
            for value in dim_values:
                table[value] = unscoped | sum(
                    1 << i for i, values in enumerate(scopes) if values is not None and value in values
                )
            named.append(dim_values)
            admits.append(table)
        keys: dict[tuple[str | None, ...], int] = {(): every}
        for table in admits:
            keys = {
                (*key, value): members & bits
                for key, members in keys.items()
                for value, bits in table.items()
            }
        copies = sum(bin(members).count("1") for members in set(keys.values()))
        if copies <= budget:
            return scope, tuple(frozenset(v) for v in named), keys
    return (), (), {}


def scope_copy_budget(rules: int) -> int:
    """How many rule copies the scope buckets of a group of ``rules`` rules may hold in all."""
    return min(MAX_SCOPE_COPIES * rules + SCOPE_COPY_ALLOWANCE, rules + MAX_EXTRA_COPIES)


def _scope_of(rule: SectionRule, dim: str) -> tuple[str, ...] | None:
    """A rule's scope for the index. A handoff rule changes a decision only for the actor ``ai``, so its
    copies go only where the actor can be ``ai`` (its match for other actors: the ``handoff`` group)."""
    if isinstance(rule, HandoffRule):
        return ("ai",) if dim == "actors" else None
    values: tuple[str, ...] | None = getattr(rule, dim, None)
    return values


def _pack_buckets(
    rules: Sequence[tuple[str, SectionRule]], chosen: list[list[int]], decided: tuple[str, ...], props: _Props
) -> tuple[tuple[Shard, ...], tuple[Bucket, ...]]:
    """The buckets' rules (``chosen``: indexes into the section per bucket, without the scope conditions
    ``decided`` by the key) packed into as few shards as fit, each bucket whole in one shard when it fits
    in one; property names are the group's (``props``)."""
    shards: list[Shard] = []
    made: list[tuple[int, _Used, list[int]]] = []
    pending: list[tuple[str, Json]] = []  # (durable rule name, expression) of the shard being filled
    pending_names: dict[str, str] = {}
    waiting: list[list[int]] = []  # the shard lists of the buckets in ``pending``

    def flush() -> None:
        if pending:
            for shard_list in waiting:
                shard_list.append(len(shards))
            shards.append(_shard(pending, pending_names))
            pending.clear()
            pending_names.clear()
            waiting.clear()

    for marker, members in enumerate(chosen):
        used = _Used(props)
        translator = _Translator(used)
        named = [
            (
                f"{rules[i][0]}{i}_{marker}",
                rules[i][1].id,
                rule_expression(rules[i][1], translator, decided, marker),
            )
            for i in members
        ]
        bucket_shards: list[int] = []
        expressions = [expr for _, _, expr in named]
        if named:
            together = [expr for _, expr in pending] + expressions
            if pending and (len(together) > MAX_RULES_PER_SHARD or not _fits(together)):
                flush()
            if len(named) > MAX_RULES_PER_SHARD or not _fits(expressions):
                for start, end in _pack(expressions):  # a bucket too large for one shard: shards of its own
                    part = named[start:end]
                    bucket_shards.append(len(shards))
                    shards.append(_shard([(n, e) for n, _, e in part], {n: rid for n, rid, _ in part}))
            else:
                pending.extend((n, e) for n, _, e in named)
                pending_names.update((n, rid) for n, rid, _ in named)
                waiting.append(bucket_shards)
                if len(pending) >= SHARD_ALONE_FROM:
                    flush()
        made.append((marker, used, bucket_shards))
    flush()
    buckets = tuple(
        Bucket(
            marker=marker,
            props=tuple(p for p in props.props.values() if p.name in used.names),
            derived=tuple(d for d in props.derived.values() if d.name in used.names),
            shards=tuple(bucket_shards),
            paths=tuple(used.paths),
        )
        for marker, used, bucket_shards in made
    )
    return tuple(shards), buckets


def _shard(named: list[tuple[str, Json]], names: dict[str, str]) -> Shard:
    # The primer rule lets the engine run one action cycle on a fresh state (see engine._prime).
    definition: dict[str, Any] = {PRIMER: {"all": [{"m": {PRIMER: 1}}]}}
    for name, expr in named:
        definition[name] = {"all": [{"m": expr}]}
    return Shard(json.dumps(definition, ensure_ascii=True), dict(names))


class _Used(_Props):
    """The group's properties, recording which of them one bucket's rules use."""

    def __init__(self, group: _Props) -> None:
        super().__init__()
        self.group = group
        self.names: set[str] = set()

    def prop(self, path: tuple[str, ...], k: str) -> str:
        name = self.group.prop(path, k)
        self.names.add(name)
        self.paths[path] = None
        return name

    def derive(self, path: tuple[str, ...], op: str, value: Any) -> str:
        name = self.group.derive(path, op, value)
        self.names.add(name)
        self.paths[path] = None
        return name


_SECTION_OF = {"decide": "permissions", "route": "routing", "escalate": "escalations", "handoff": "handoff"}


def _path_of(rule: SectionRule) -> tuple[str | int, ...]:
    match = re.fullmatch(r"(\w+)\[(\d+)\]", rule.path)
    return (match.group(1), int(match.group(2))) if match else ()


def compile_ruleset(ruleset: Ruleset) -> CompiledRuleset:
    return CompiledRuleset(ruleset.digest, {name: compile_group(ruleset, name) for name in GROUP_NAMES})


def engine_limit_problems(ruleset: Ruleset) -> list[tuple[str, str, tuple[str | int, ...]]]:
    """Engine limits as (code, message, path), checked at validation time by compiling every group.

    When there are none, the compiled form is handed to the engine through ``ruleset.compiled`` so the
    first evaluation does not compile the same ruleset again."""
    out: list[tuple[str, str, tuple[str | int, ...]]] = []
    groups: dict[str, Group] = {}
    for group in GROUP_NAMES:
        if group == "handoff" and "decide" not in groups:
            continue  # its rules are among decide's, whose problems are reported already
        count = len(_section_rules(ruleset, group))
        if count > MAX_RULES_PER_SECTION:
            out.append(
                (
                    "E_ENGINE_LIMIT",
                    f"{count} {group} rules; at most {MAX_RULES_PER_SECTION} are supported",
                    (_SECTION_OF[group],),
                )
            )
            continue
        try:
            groups[group] = compile_group(ruleset, group)
        except CompileError as exc:
            out.append((exc.code, str(exc), exc.path))
    if not out:
        ruleset.compiled.append(CompiledRuleset(ruleset.digest, groups))
    return out
