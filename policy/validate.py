"""Ruleset validation: every problem at once, each with a stable code, YAML position and path; lint warnings.

Error codes (stable): E_SYNTAX, E_DUPLICATE_KEY, E_UNKNOWN_KEY, E_MISSING_KEY, E_TYPE, E_VALUE, E_UNKNOWN_OP,
E_UNKNOWN_FACT, E_UNKNOWN_STAGE, E_UNKNOWN_ACTION, E_UNKNOWN_ACTOR, E_UNKNOWN_PRIORITY, E_UNKNOWN_EFFECT,
E_DUPLICATE_ID, E_BAD_REGEX, E_BAD_DURATION, E_ENGINE_LIMIT; the input limits of ``policy.limits``:
E_SOURCE_TOO_LARGE, E_YAML_TOO_MANY_NODES, E_YAML_TOO_DEEP, E_YAML_RECURSIVE_ALIAS, E_TOO_MANY_RULES.
Warning codes: W_UNCOVERED, W_SHADOWED, W_UNREACHABLE_ROUTE, W_SLA_MISSING, W_HANDOFF_ALWAYS, W_NO_EFFECT,
W_UNKNOWN_FACT (a fact outside the catalogue ``policy.model.FACTS`` in ``customer``/``order``, or one that is
never produced), W_TRANSITION_OFF_GRAPH (an escalation's ``then: transition`` that is not an edge from a stage
it applies to), W_UNKNOWN_TEAM (routing or escalating to a team the merchant does not have; only when the
caller passes the merchant's team names).
Both lists are in file order (line, then column); ``ValidationReport.in_file_order`` interleaves them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from policy.compile import engine_limit_problems
from policy.durations import parse_duration
from policy.limits import RulesetLimits
from policy.load import Marks, Path, format_path, parse_yaml
from policy.model import (
    ACTIONS,
    ACTORS,
    DEFAULT_EXECUTION_TIMEOUT,
    EFFECTS,
    FACTS,
    NAMESPACES,
    NEVER_PRODUCED,
    OPEN_NAMESPACES,
    OPS,
    PRIORITIES,
    SET_KEYS,
    STRATEGIES,
    THEN_KEYS,
    AllOf,
    AnyOf,
    Assign,
    Condition,
    EscalationRule,
    EscalationThen,
    HandoffRule,
    Leaf,
    NotOf,
    PermissionRule,
    Problem,
    RoutingRule,
    Ruleset,
    RulesetTest,
    SlaTarget,
    TicketSet,
    ValidationReport,
)
from policy.regex import Regex, RegexError

MAX_LITERAL_CHARS = 1024
MAX_CATEGORY_CHARS = 60  # a ticket's category (``set: {category}``) is stored in at most 60 characters
MAX_NUMBER = 1e15
MAX_DECLARED_ACTIONS = 32
# A declared external action type: lower case, as the built-in ones are (``create_return_label``).
_ACTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_TOP_KEYS = {
    "ruleset",
    "description",
    "stages",
    "transitions",
    "actions",
    "defaults",
    "permissions",
    "routing",
    "sla",
    "escalations",
    "handoff",
    "tests",
}
_EXPECT_KEYS = {
    "effect",
    "rules",
    "deciding",
    "approvers",
    "handoff",
    "handoff_rules",
    "route",
    "team",
    "escalations",
}
_RULE_SECTIONS = ("permissions", "routing", "escalations", "handoff")
_THEN_KEYS = set(THEN_KEYS)
_SET_KEYS = set(SET_KEYS)
# Facts whose literal values must name a known stage / action / actor / priority.
_DOMAIN: dict[str, tuple[str, str]] = {
    "ticket.stage": ("stage", "E_UNKNOWN_STAGE"),
    "action.target_stage": ("stage", "E_UNKNOWN_STAGE"),
    "action.stage": ("stage", "E_UNKNOWN_STAGE"),
    "action.type": ("action", "E_UNKNOWN_ACTION"),
    "action.actor": ("actor", "E_UNKNOWN_ACTOR"),
    "ticket.priority": ("priority", "E_UNKNOWN_PRIORITY"),
    "classifier.priority": ("priority", "E_UNKNOWN_PRIORITY"),
    "action.priority": ("priority", "E_UNKNOWN_PRIORITY"),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


class _Checker:
    def __init__(
        self,
        marks: Marks,
        filename: str,
        limits: RulesetLimits,
        known_teams: frozenset[str] | None = None,
    ) -> None:
        self.marks = marks
        self.filename = filename
        self.limits = limits
        self.known_teams = known_teams
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.stages: tuple[str, ...] = ()
        self.actions: tuple[str, ...] = ACTIONS  # the built-in ones and those the ruleset declares
        self.transitions_of: dict[str, tuple[str, ...]] = {}
        self.ids: dict[str, Path] = {}

    # -- reporting ---------------------------------------------------------------------------------
    def err(self, code: str, message: str, path: Path, *, key: bool = False) -> None:
        line, col = self.marks.at(path, key=key)
        self.problems.append(Problem(code, message, line, col, format_path(path), "error", self.filename))

    def warn(self, code: str, message: str, path: Path) -> None:
        line, col = self.marks.at(path)
        self.warnings.append(Problem(code, message, line, col, format_path(path), "warning", self.filename))

    # -- generic shapes ----------------------------------------------------------------------------
    def mapping(
        self, value: Any, path: Path, allowed: set[str], required: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.err("E_TYPE", f"expected a mapping, got {_type_name(value)}", path)
            return None
        for key in value:
            if key not in allowed:
                self.err(
                    "E_UNKNOWN_KEY",
                    f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})",
                    (*path, key),
                    key=True,
                )
        for key in required:
            if key not in value:
                self.err("E_MISSING_KEY", f"missing required key {key!r}", path)
        return value

    def string(self, value: Any, path: Path, *, nonempty: bool = True) -> str | None:
        if not isinstance(value, str) or (nonempty and not value.strip()):
            self.err("E_TYPE", f"expected a non-empty string, got {_type_name(value)}", path)
            return None
        return value

    def string_list(self, value: Any, path: Path) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not value:
            self.err("E_TYPE", f"expected a non-empty list of strings, got {_type_name(value)}", path)
            return None
        out = []
        for i, item in enumerate(value):
            text = self.string(item, (*path, i))
            if text is not None:
                out.append(text)
        return tuple(out)

    def enum_list(
        self, value: Any, path: Path, allowed: tuple[str, ...], code: str, what: str
    ) -> tuple[str, ...] | None:
        items = self.string_list(value, path)
        if items is None:
            return None
        for i, item in enumerate(value):
            if isinstance(item, str) and item not in allowed:
                self.err(code, f"unknown {what} {item!r} (known: {', '.join(allowed)})", (*path, i))
        return tuple(dict.fromkeys(items))

    def duration(self, value: Any, path: Path) -> timedelta | None:
        if not isinstance(value, str):
            self.err(
                "E_BAD_DURATION", f"expected a duration like 30m, 4h or 2d, got {_type_name(value)}", path
            )
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.err("E_BAD_DURATION", str(exc), path)
            return None

    def rule_id(self, value: Any, path: Path) -> str | None:
        if not isinstance(value, str) or not _ID.fullmatch(value):
            self.err("E_VALUE", f"rule id must match {_ID.pattern}, got {value!r}", path)
            return None
        if value in self.ids:
            self.err(
                "E_DUPLICATE_ID",
                f"duplicate rule id {value!r} (first at {format_path(self.ids[value])})",
                path,
            )
            return None
        self.ids[value] = path
        return value

    def rules(self, value: Any, path: Path, one: Callable[[dict[str, Any], Path], Any]) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err("E_TYPE", f"expected a list, got {_type_name(value)}", path)
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.err("E_TYPE", f"expected a mapping, got {_type_name(item)}", (*path, i))
                continue
            built = one(item, (*path, i))
            if built is not None:
                out.append(built)
        return out

    # -- conditions ----------------------------------------------------------------------------------
    def condition(self, value: Any, path: Path) -> Condition | None:
        if not isinstance(value, dict):
            self.err("E_TYPE", f"a condition must be a mapping, got {_type_name(value)}", path)
            return None
        where = format_path(path)
        for combinator in ("all", "any"):
            if combinator in value:
                self.mapping(value, path, {combinator})
                items = value[combinator]
                if not isinstance(items, list) or not items:
                    self.err(
                        "E_TYPE", f"'{combinator}' needs a non-empty list of conditions", (*path, combinator)
                    )
                    return None
                built = [self.condition(item, (*path, combinator, i)) for i, item in enumerate(items)]
                if any(b is None for b in built):
                    return None
                parts = tuple(b for b in built if b is not None)
                return AllOf(parts, where) if combinator == "all" else AnyOf(parts, where)
        if "not" in value:
            self.mapping(value, path, {"not"})
            inner = self.condition(value["not"], (*path, "not"))
            return NotOf(inner, where) if inner is not None else None
        return self.leaf(value, path)

    def leaf(self, value: dict[str, Any], path: Path) -> Leaf | None:
        ops = [k for k in value if k != "fact"]
        unknown = [k for k in ops if k not in OPS]
        for key in unknown:
            self.err(
                "E_UNKNOWN_OP",
                f"unknown operator {key!r} (known: {', '.join(OPS)}; or all/any/not)",
                (*path, key),
                key=True,
            )
        if "fact" not in value:
            self.err("E_MISSING_KEY", "a condition leaf needs 'fact' (or use all/any/not)", path)
            return None
        known_ops = [k for k in ops if k in OPS]
        if unknown:
            return None
        if len(known_ops) != 1:
            self.err("E_VALUE", f"a condition leaf needs exactly one operator, got {len(known_ops)}", path)
            return None
        op = known_ops[0]
        fact = self.fact_path(value["fact"], (*path, "fact"))
        literal = self.literal(op, value[op], (*path, op), fact)
        if fact is None or literal is _BAD:
            return None
        if isinstance(literal, Regex):
            return Leaf(fact, op, literal.pattern, format_path(path), literal)
        return Leaf(fact, op, literal, format_path(path))

    def fact_path(self, value: Any, path: Path) -> str | None:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)+", value):
            self.err(
                "E_UNKNOWN_FACT", f"fact must be a dotted path like ticket.priority, got {value!r}", path
            )
            return None
        namespace, *rest = value.split(".")
        if namespace not in NAMESPACES:
            self.err(
                "E_UNKNOWN_FACT",
                f"unknown fact namespace {namespace!r} in {value!r} (known: {', '.join(NAMESPACES)})",
                path,
            )
            return None
        if namespace == "custom" or rest[0] == "custom":
            return value  # the merchant's own facts
        known = FACTS[namespace]
        if rest[0] in NEVER_PRODUCED.get(namespace, ()) and len(rest) == 1:
            self.warn(
                "W_UNKNOWN_FACT",
                f"fact {value!r} is never produced, so this condition never matches "
                f"(known {namespace} facts: {', '.join(sorted(known))})",
                path,
            )
            return value
        if rest[0] in known and len(rest) == 1:
            return value
        hint = (
            f"known {namespace} facts: {', '.join(sorted(known))}; your own: custom.* or {namespace}.custom.*"
        )
        if namespace in OPEN_NAMESPACES:
            self.warn("W_UNKNOWN_FACT", f"unknown fact {value!r}, never produced ({hint})", path)
            return value
        self.err("E_UNKNOWN_FACT", f"unknown fact {value!r} ({hint})", path)
        return None

    def literal(self, op: str, value: Any, path: Path, fact: str | None) -> Any:
        if op == "exists":
            if not isinstance(value, bool):
                self.err("E_TYPE", f"'exists' takes true or false, got {value!r}", path)
                return _BAD
            return value
        if op in ("lt", "lte", "gt", "gte"):
            if not _is_number(value) or not math.isfinite(value) or abs(value) > MAX_NUMBER:
                self.err("E_TYPE", f"'{op}' needs a finite number, got {value!r}", path)
                return _BAD
            return value
        if op == "matches":
            if not isinstance(value, str):
                self.err(
                    "E_TYPE", f"'matches' needs a regular expression string, got {_type_name(value)}", path
                )
                return _BAD
            if len(value) > MAX_LITERAL_CHARS:
                self.err("E_BAD_REGEX", f"pattern longer than {MAX_LITERAL_CHARS} characters", path)
                return _BAD
            try:
                return Regex(
                    value,
                    max_mem=self.limits.regex_max_mem_bytes,
                    max_text_chars=self.limits.regex_max_text_chars,
                )
            except RegexError as exc:
                self.err("E_BAD_REGEX", f"{value!r}: {exc}", path)
                return _BAD
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                self.err("E_TYPE", f"'{op}' needs a non-empty list, got {_type_name(value)}", path)
                return _BAD
            ok = all(self.scalar(v, (*path, i), fact) for i, v in enumerate(value))
            return tuple(value) if ok else _BAD
        domain_fact = fact if op in ("eq", "ne") else None  # contains: a substring, not a domain value
        return value if self.scalar(value, path, domain_fact) else _BAD

    def scalar(self, value: Any, path: Path, fact: str | None) -> bool:
        if not _is_scalar(value):
            self.err("E_TYPE", f"expected a string, number or boolean, got {_type_name(value)}", path)
            return False
        if isinstance(value, str) and len(value) > MAX_LITERAL_CHARS:
            self.err("E_VALUE", f"string literal longer than {MAX_LITERAL_CHARS} characters", path)
            return False
        if _is_number(value) and (not math.isfinite(value) or abs(value) > MAX_NUMBER):
            self.err("E_VALUE", f"number out of range (|x| <= {MAX_NUMBER:g}): {value!r}", path)
            return False
        if fact in _DOMAIN and isinstance(value, str):
            what, code = _DOMAIN[fact]
            domains = {"stage": self.stages, "action": self.actions, "actor": ACTORS, "priority": PRIORITIES}
            allowed = domains[what]
            if allowed and value not in allowed:
                self.err(code, f"unknown {what} {value!r} (known: {', '.join(allowed)})", path)
                return False
        return True

    # -- sections ------------------------------------------------------------------------------------
    def permission(self, item: dict[str, Any], path: Path) -> PermissionRule | None:
        self.mapping(
            item,
            path,
            {"id", "description", "actors", "actions", "stages", "when", "effect", "approvers"},
            ("id", "effect"),
        )
        rid = self.rule_id(item.get("id"), (*path, "id")) if "id" in item else None
        effect = item.get("effect")
        if "effect" in item and effect not in EFFECTS:
            self.err(
                "E_UNKNOWN_EFFECT",
                f"unknown effect {effect!r} (known: {', '.join(EFFECTS)})",
                (*path, "effect"),
            )
            effect = None
        scope = self.scope(item, path)
        when = self.condition(item["when"], (*path, "when")) if "when" in item else None
        approvers: tuple[str, ...] = ()
        if "approvers" in item:
            approvers = self.string_list(item["approvers"], (*path, "approvers")) or ()
            if effect != "require_approval":
                self.warn(
                    "W_NO_EFFECT", "approvers only apply to require_approval rules", (*path, "approvers")
                )
        if rid is None or effect is None or scope is None or ("when" in item and when is None):
            return None
        return PermissionRule(
            rid, effect, *scope, when, approvers, str(item.get("description", "")), format_path(path)
        )

    def scope(
        self, item: dict[str, Any], path: Path
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None, tuple[str, ...] | None] | None:
        ok = True
        values: list[tuple[str, ...] | None] = []
        for key, allowed, code, what in (
            ("actors", ACTORS, "E_UNKNOWN_ACTOR", "actor"),
            ("actions", self.actions, "E_UNKNOWN_ACTION", "action"),
            ("stages", self.stages, "E_UNKNOWN_STAGE", "stage"),
        ):
            if key not in item:
                values.append(None)
                continue
            got = self.enum_list(item[key], (*path, key), allowed, code, what)
            ok = ok and got is not None
            values.append(got)
        return (values[0], values[1], values[2]) if ok else None

    def routing(self, item: dict[str, Any], path: Path) -> RoutingRule | None:
        self.mapping(item, path, {"id", "description", "when", "assign", "set"}, ("id",))
        rid = self.rule_id(item.get("id"), (*path, "id")) if "id" in item else None
        when = self.condition(item["when"], (*path, "when")) if "when" in item else None
        assign = None
        ok = True
        if "assign" in item:
            spec = self.mapping(item["assign"], (*path, "assign"), {"team", "strategy", "skills"}, ("team",))
            if spec is None:
                ok = False
            else:
                team = self.string(spec.get("team"), (*path, "assign", "team")) if "team" in spec else None
                strategy = spec.get("strategy", "round_robin")
                if strategy not in STRATEGIES:
                    self.err(
                        "E_VALUE",
                        f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})",
                        (*path, "assign", "strategy"),
                    )
                    ok = False
                skills = (
                    self.string_list(spec["skills"], (*path, "assign", "skills")) if "skills" in spec else ()
                )
                if team is None or skills is None:
                    ok = False
                else:
                    assign = Assign(team, str(strategy), skills)
        sets = self.set_block(item.get("set"), (*path, "set")) if "set" in item else TicketSet()
        if "assign" not in item and "set" not in item:
            self.err("E_MISSING_KEY", "a routing rule needs 'assign' and/or 'set'", path)
            ok = False
        if assign is not None:
            self.known_team(
                assign.team,
                (*path, "assign", "team"),
                "tickets routed by this rule stay unassigned and are flagged for a human",
            )
        if rid is None or not ok or sets is None or ("when" in item and when is None):
            return None
        return RoutingRule(rid, when, assign, sets, str(item.get("description", "")), format_path(path))

    def known_team(self, team: str, path: Path, consequence: str) -> None:
        """W_UNKNOWN_TEAM when the caller told us the merchant's teams and ``team`` is not one of them."""
        if self.known_teams is None or team in self.known_teams:
            return
        have = ", ".join(sorted(self.known_teams)) or "none"
        self.warn(
            "W_UNKNOWN_TEAM",
            f"team {team!r} does not exist for this merchant (its teams: {have}); {consequence}",
            path,
        )

    def set_block(self, value: Any, path: Path) -> TicketSet | None:
        spec = self.mapping(value, path, _SET_KEYS)
        if spec is None:
            return None
        ok = self.ticket_updates(spec, path)
        if "category" in spec:
            category = self.string(spec["category"], (*path, "category"))
            if category is None:
                ok = False
            elif len(category) > MAX_CATEGORY_CHARS:
                self.err(
                    "E_VALUE", f"a category has at most {MAX_CATEGORY_CHARS} characters", (*path, "category")
                )
                ok = False
        if not ok:
            return None
        return TicketSet(
            priority=spec.get("priority"),
            category=spec.get("category"),
            tags=tuple(spec.get("tags", ())),
            needs_human=spec.get("needs_human"),
        )

    def ticket_updates(self, spec: dict[str, Any], path: Path) -> bool:
        """The checks shared by routing ``set:`` and escalation ``then:``: priority, tags, needs_human."""
        ok = True
        if "priority" in spec and spec["priority"] not in PRIORITIES:
            self.err("E_UNKNOWN_PRIORITY", f"unknown priority {spec['priority']!r}", (*path, "priority"))
            ok = False
        if "tags" in spec and self.string_list(spec["tags"], (*path, "tags")) is None:
            ok = False
        if "needs_human" in spec and not isinstance(spec["needs_human"], bool):
            self.err("E_TYPE", "needs_human must be true or false", (*path, "needs_human"))
            ok = False
        return ok

    def escalation(self, item: dict[str, Any], path: Path) -> EscalationRule | None:
        self.mapping(
            item, path, {"id", "description", "when", "stages", "after", "then"}, ("id", "after", "then")
        )
        rid = self.rule_id(item.get("id"), (*path, "id")) if "id" in item else None
        when = self.condition(item["when"], (*path, "when")) if "when" in item else None
        stages = (
            self.enum_list(item["stages"], (*path, "stages"), self.stages, "E_UNKNOWN_STAGE", "stage")
            if "stages" in item
            else None
        )
        after = self.duration(item["after"], (*path, "after")) if "after" in item else None
        then = self.then_block(item["then"], (*path, "then")) if "then" in item else None
        if rid is None or after is None or then is None or ("when" in item and when is None):
            return None
        if "stages" in item and stages is None:
            return None
        if then.transition is not None:
            self.transition_on_graph(then.transition, stages, (*path, "then", "transition"))
        if then.team is not None:
            self.known_team(
                then.team, (*path, "then", "team"), "the scheduler skips the team change when this fires"
            )
        return EscalationRule(
            rid, after, then, stages, when, str(item.get("description", "")), format_path(path)
        )

    def transition_on_graph(self, target: str, stages: tuple[str, ...] | None, path: Path) -> None:
        """W_TRANSITION_OFF_GRAPH when a stage the escalation applies to has no edge to ``target``: the
        scheduler would record the firing as skipped there. Without ``stages`` the escalation applies to
        every stage that has a way out (a ticket in a final stage is not escalated); a ticket already in
        ``target`` is simply left there."""
        applies = (
            stages if stages is not None else tuple(s for s in self.stages if self.transitions_of.get(s))
        )
        off = [s for s in applies if s != target and target not in self.transitions_of.get(s, ())]
        if off:
            self.warn(
                "W_TRANSITION_OFF_GRAPH",
                f"'then: transition: {target}' is not an edge of the ruleset's graph from stage(s) "
                f"{', '.join(off)}; there the escalation fires without moving the ticket",
                path,
            )

    def then_block(self, value: Any, path: Path) -> EscalationThen | None:
        spec = self.mapping(value, path, _THEN_KEYS)
        if spec is None:
            return None
        if not spec:
            self.err("E_VALUE", f"'then' needs at least one of {', '.join(THEN_KEYS)}", path)
            return None
        ok = True
        if "transition" in spec and spec["transition"] not in self.stages:
            self.err("E_UNKNOWN_STAGE", f"unknown stage {spec['transition']!r}", (*path, "transition"))
            ok = False
        if not self.ticket_updates(spec, path):
            ok = False
        if "team" in spec and self.string(spec["team"], (*path, "team")) is None:
            ok = False
        if not ok:
            return None
        return EscalationThen(
            transition=spec.get("transition"),
            priority=spec.get("priority"),
            team=spec.get("team"),
            tags=tuple(spec.get("tags", ())),
            needs_human=spec.get("needs_human"),
        )

    def handoff(self, item: dict[str, Any], path: Path) -> HandoffRule | None:
        self.mapping(item, path, {"id", "description", "when", "reason", "approvers"}, ("id",))
        rid = self.rule_id(item.get("id"), (*path, "id")) if "id" in item else None
        when = self.condition(item["when"], (*path, "when")) if "when" in item else None
        if "when" not in item:
            self.warn("W_HANDOFF_ALWAYS", "a handoff rule without 'when' hands off every AI action", path)
        approvers: tuple[str, ...] | None = ("agent",)
        if "approvers" in item:
            approvers = self.string_list(item["approvers"], (*path, "approvers"))
        reason = item.get("reason", item.get("description", ""))
        if not isinstance(reason, str):
            self.err("E_TYPE", "reason must be a string", (*path, "reason"))
            return None
        if rid is None or approvers is None or ("when" in item and when is None):
            return None
        return HandoffRule(
            rid, when, reason or rid, approvers, str(item.get("description", "")), format_path(path)
        )

    def test(self, item: dict[str, Any], path: Path) -> RulesetTest | None:
        self.mapping(item, path, {"name", "facts", "expect"}, ("name", "facts", "expect"))
        name = self.string(item.get("name"), (*path, "name")) if "name" in item else None
        facts = (
            self.mapping(item.get("facts"), (*path, "facts"), set(NAMESPACES)) if "facts" in item else None
        )
        expect = (
            self.mapping(item.get("expect"), (*path, "expect"), _EXPECT_KEYS) if "expect" in item else None
        )
        if expect is not None:
            if not expect:
                self.err("E_VALUE", "'expect' is empty: the test would check nothing", (*path, "expect"))
                return None
            if "effect" in expect and expect["effect"] not in EFFECTS:
                self.err(
                    "E_UNKNOWN_EFFECT", f"unknown effect {expect['effect']!r}", (*path, "expect", "effect")
                )
                return None
        if name is None or facts is None or expect is None:
            return None
        return RulesetTest(name, facts, expect, format_path(path))

    # -- the whole document ------------------------------------------------------------------------
    def document(self, data: Any, source: str) -> Ruleset | None:
        root = self.mapping(data, (), _TOP_KEYS, ("ruleset", "stages"))
        if root is None:
            return None
        name = self.string(root.get("ruleset"), ("ruleset",)) if "ruleset" in root else None
        description = root.get("description", "")
        if not isinstance(description, str):
            self.err("E_TYPE", "description must be a string", ("description",))
        stages = self.string_list(root.get("stages"), ("stages",)) if "stages" in root else None
        if stages is not None:
            seen: set[str] = set()
            for i, stage in enumerate(stages):
                if stage in seen:
                    self.err("E_VALUE", f"stage {stage!r} listed twice", ("stages", i))
                seen.add(stage)
            self.stages = tuple(dict.fromkeys(stages))
        transitions = self.transitions(root.get("transitions", {}))
        self.transitions_of = transitions
        external_actions = self.declared_actions(root["actions"]) if "actions" in root else ()
        self.actions = ACTIONS + external_actions
        default_effect = "deny"
        execution_timeout = DEFAULT_EXECUTION_TIMEOUT
        if "defaults" in root:
            defaults = self.mapping(root["defaults"], ("defaults",), {"effect", "execution_timeout"})
            if defaults is not None and "effect" in defaults:
                if defaults["effect"] not in EFFECTS:
                    self.err(
                        "E_UNKNOWN_EFFECT", f"unknown effect {defaults['effect']!r}", ("defaults", "effect")
                    )
                else:
                    default_effect = defaults["effect"]
            if defaults is not None and "execution_timeout" in defaults:
                timeout = self.duration(defaults["execution_timeout"], ("defaults", "execution_timeout"))
                if timeout is not None and timeout <= timedelta(0):
                    self.err(
                        "E_VALUE",
                        "execution_timeout must be longer than 0",
                        ("defaults", "execution_timeout"),
                    )
                elif timeout is not None:
                    execution_timeout = timeout
        if not self.rule_count_fits(root):
            return None
        permissions = self.rules(root.get("permissions"), ("permissions",), self.permission)
        routing = self.rules(root.get("routing"), ("routing",), self.routing)
        sla = self.sla(root.get("sla", {}))
        escalations = self.rules(root.get("escalations"), ("escalations",), self.escalation)
        handoff = self.rules(root.get("handoff"), ("handoff",), self.handoff)
        tests = self.rules(root.get("tests"), ("tests",), self.test)
        if self.problems or name is None or stages is None:
            return None
        return Ruleset(
            name=name,
            description=description if isinstance(description, str) else "",
            stages=self.stages,
            transitions=transitions,
            default_effect=default_effect,
            permissions=tuple(permissions),
            routing=tuple(routing),
            sla=sla,
            escalations=tuple(escalations),
            handoff=tuple(handoff),
            tests=tuple(tests),
            digest=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            source=source,
            execution_timeout=execution_timeout,
            external_actions=external_actions,
        )

    def declared_actions(self, value: Any) -> tuple[str, ...]:
        """``actions: {external: [name, ...]}``: the merchant's own external action types (carried out by a
        partner system like the built-in refund), each a lower-case name not clashing with a built-in."""
        spec = self.mapping(value, ("actions",), {"external"})
        if spec is None or "external" not in spec:
            return ()
        path: Path = ("actions", "external")
        if spec["external"] == []:
            return ()
        names = self.string_list(spec["external"], path)
        if names is None:
            return ()
        if len(names) > MAX_DECLARED_ACTIONS:
            self.err("E_VALUE", f"at most {MAX_DECLARED_ACTIONS} external action types", path)
            return ()
        declared: list[str] = []
        for i, name in enumerate(names):
            if not _ACTION_NAME.fullmatch(name):
                self.err(
                    "E_ACTION_NAME",
                    f"action type {name!r} must match {_ACTION_NAME.pattern} (lower case, digits, '_')",
                    (*path, i),
                )
            elif name in ACTIONS:
                self.err(
                    "E_ACTION_CLASH",
                    f"{name!r} is a built-in action type; declare only types Bookbag does not know",
                    (*path, i),
                )
            elif name in declared:
                self.err("E_VALUE", f"action type {name!r} listed twice", (*path, i))
            else:
                declared.append(name)
        return tuple(declared)

    def rule_count_fits(self, root: dict[str, Any]) -> bool:
        """Refuse more than ``max_rules`` rules before validating any, at the first rule over the cap."""
        seen = 0
        for section in _RULE_SECTIONS:
            items = root.get(section)
            if not isinstance(items, list):
                continue
            if seen + len(items) > self.limits.max_rules:
                total = sum(len(root[s]) for s in _RULE_SECTIONS if isinstance(root.get(s), list))
                self.err(
                    "E_TOO_MANY_RULES",
                    f"{total} rules; at most {self.limits.max_rules} are allowed across "
                    f"{', '.join(_RULE_SECTIONS)}",
                    (section, self.limits.max_rules - seen),
                )
                return False
            seen += len(items)
        return True

    def transitions(self, value: Any) -> dict[str, tuple[str, ...]]:
        spec = self.mapping(
            value, ("transitions",), set(self.stages) | set(value if isinstance(value, dict) else ())
        )
        out: dict[str, tuple[str, ...]] = {}
        if spec is None:
            return out
        for source, targets in spec.items():
            path: Path = ("transitions", source)
            if source not in self.stages:
                self.err("E_UNKNOWN_STAGE", f"transition from unknown stage {source!r}", path, key=True)
            if not isinstance(targets, list):
                self.err("E_TYPE", f"expected a list of stages, got {_type_name(targets)}", path)
                continue
            for i, target in enumerate(targets):
                if target not in self.stages:
                    self.err(
                        "E_UNKNOWN_STAGE", f"transition {source} -> {target!r}: unknown stage", (*path, i)
                    )
            out[source] = tuple(t for t in targets if isinstance(t, str))
        return out

    def sla(self, value: Any) -> dict[str, SlaTarget]:
        spec = self.mapping(value, ("sla",), set(PRIORITIES) | set(value if isinstance(value, dict) else ()))
        out: dict[str, SlaTarget] = {}
        if spec is None:
            return out
        for priority, target in spec.items():
            path: Path = ("sla", priority)
            if priority not in PRIORITIES:
                self.err(
                    "E_UNKNOWN_PRIORITY",
                    f"unknown priority {priority!r} (known: {', '.join(PRIORITIES)})",
                    path,
                    key=True,
                )
                continue
            block = self.mapping(
                target, path, {"first_response", "resolution"}, ("first_response", "resolution")
            )
            if block is None or "first_response" not in block or "resolution" not in block:
                continue
            first = self.duration(block["first_response"], (*path, "first_response"))
            resolution = self.duration(block["resolution"], (*path, "resolution"))
            if first is None or resolution is None:
                continue
            if first > resolution:
                self.err("E_VALUE", "first_response must not be longer than resolution", path)
                continue
            out[priority] = SlaTarget(first, resolution)
        return out


class _Bad:
    pass


_BAD = _Bad()


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def lint(ruleset: Ruleset, warn: Callable[[str, str, Path], None]) -> None:
    """Warnings for a ruleset that is valid but probably not what the merchant meant."""
    for actor in ACTORS:
        for action in ACTIONS + ruleset.external_actions:
            uncovered = [
                stage
                for stage in ruleset.stages
                if not any(_in_scope(rule, actor, action, stage) for rule in ruleset.permissions)
            ]
            if uncovered and len(uncovered) < len(ruleset.stages) and ruleset.default_effect == "deny":
                # At the first rule that covers this actor and action in the other stages: the rule whose
                # stages the merchant probably meant to widen.
                index = next(
                    i
                    for i, rule in enumerate(ruleset.permissions)
                    if any(_in_scope(rule, actor, action, stage) for stage in ruleset.stages)
                )
                warn(
                    "W_UNCOVERED",
                    f"no permission rule covers actor {actor}, action {action} in stage(s) "
                    f"{', '.join(uncovered)} (the default effect {ruleset.default_effect} applies; "
                    f"rule {ruleset.permissions[index].id!r} covers it elsewhere)",
                    ("permissions", index),
                )
    blanket_denies = [r for r in ruleset.permissions if r.effect == "deny" and r.when is None]
    for index, rule in enumerate(ruleset.permissions):
        if rule.effect == "deny":
            continue
        for deny in blanket_denies:
            if _scope_covers(deny, rule):
                warn(
                    "W_SHADOWED",
                    f"rule {rule.id!r} can never decide: unconditional deny {deny.id!r} "
                    "covers its whole scope",
                    ("permissions", index),
                )
                break
    catch_all = None
    for index, route in enumerate(ruleset.routing):
        if catch_all is not None:
            warn(
                "W_UNREACHABLE_ROUTE",
                f"routing rule {route.id!r} comes after catch-all {catch_all!r} "
                "and never matches (routing is first-match)",
                ("routing", index),
            )
        elif route.when is None:
            catch_all = route.id
    if ruleset.sla:
        missing = [p for p in PRIORITIES if p not in ruleset.sla]
        if missing:
            warn("W_SLA_MISSING", f"no SLA target for priority {', '.join(missing)}", ("sla",))


def _in_scope(rule: PermissionRule, actor: str, action: str, stage: str) -> bool:
    return (
        (rule.actors is None or actor in rule.actors)
        and (rule.actions is None or action in rule.actions)
        and (rule.stages is None or stage in rule.stages)
    )


def _scope_covers(outer: PermissionRule, inner: PermissionRule) -> bool:
    def covers(a: tuple[str, ...] | None, b: tuple[str, ...] | None) -> bool:
        return a is None or (b is not None and set(b) <= set(a))

    return (
        covers(outer.actors, inner.actors)
        and covers(outer.actions, inner.actions)
        and covers(outer.stages, inner.stages)
    )


def validate_source(
    source: str,
    filename: str = "<ruleset>",
    limits: RulesetLimits | None = None,
    *,
    known_teams: frozenset[str] | None = None,
) -> ValidationReport:
    """Validate a ruleset source; the report carries the built Ruleset when there are no errors.

    ``known_teams``: the merchant's team names, when the caller knows them (publish); routing or escalating
    to another team is then W_UNKNOWN_TEAM. Problems and warnings come in file order."""
    limits = limits or RulesetLimits()
    too_large = _source_too_large(source, filename, limits)
    if too_large is not None:
        return ValidationReport((too_large,), ())
    parsed = parse_yaml(source, filename, limits)
    checker = _Checker(parsed.marks, filename, limits, known_teams)
    checker.problems.extend(parsed.problems)
    if parsed.data is None:
        return ValidationReport(tuple(checker.problems), ())
    ruleset = checker.document(parsed.data, source)
    if ruleset is not None:
        for code, message, path in engine_limit_problems(ruleset):
            checker.err(code, message, path)
        lint(ruleset, checker.warn)
    if checker.problems:
        ruleset = None
    return ValidationReport(
        tuple(in_file_order(checker.problems)), tuple(in_file_order(checker.warnings)), ruleset
    )


def in_file_order(problems: Iterable[Problem]) -> list[Problem]:
    """Top to bottom, left to right (a stable sort: problems at one place keep the order they were found)."""
    return sorted(problems, key=lambda p: (p.line, p.col))


def _source_too_large(source: str, filename: str, limits: RulesetLimits) -> Problem | None:
    cap = limits.max_source_bytes
    if len(source) <= cap // 4:  # at most 4 UTF-8 bytes per character: surely within the cap
        return None
    encoded = source.encode("utf-8", "surrogatepass")
    if len(encoded) <= cap:
        return None
    line = encoded.count(b"\n", 0, cap) + 1
    return Problem(
        "E_SOURCE_TOO_LARGE",
        f"the ruleset source is {len(encoded)} bytes; at most {cap} are allowed (this line crosses the cap)",
        line,
        1,
        "<root>",
        "error",
        filename,
    )
