"""The ruleset and decision data model: immutable dataclasses shared by every stage of the policy pipeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from policy.regex import Regex


# The vocabulary the rules speak, defined once: the workflow and the GraphQL enums (schema/enums.py wraps
# these very classes) use them, so a value can never exist in one place and not in another.
class Actor(StrEnum):
    """Who the rules see acting. Admins act on tickets as human agents."""

    AI = "ai"
    AGENT = "agent"
    PARTNER = "partner"
    SYSTEM = "system"


class Action(StrEnum):
    """What an actor may ask to do to a ticket: the built-in types (a ruleset may declare more external ones,
    ``Ruleset.external_actions``)."""

    REPLY = "reply"
    TAG = "tag"
    ASSIGN = "assign"
    TRANSITION = "transition"
    REFUND = "refund"
    CANCEL_ORDER = "cancel_order"
    CHANGE_SHIPPING_ADDRESS = "change_shipping_address"
    RESHIP_ORDER = "reship_order"
    ISSUE_DISCOUNT = "issue_discount"
    CLOSE = "close"
    NOTE = "note"
    SET_PRIORITY = "set_priority"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Effect(StrEnum):
    ALLOW = "allow"
    REQUIRE_APPROVAL = "require_approval"
    DENY = "deny"


class Severity(StrEnum):
    """Of a ruleset problem: an error stops a ruleset from being published, a warning does not."""

    ERROR = "error"
    WARNING = "warning"


ACTORS: tuple[str, ...] = tuple(a.value for a in Actor)
ACTIONS: tuple[str, ...] = tuple(a.value for a in Action)
PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)
EFFECTS: tuple[str, ...] = tuple(e.value for e in Effect)
DEFAULT_EXECUTION_TIMEOUT = timedelta(minutes=15)
STRATEGIES: tuple[str, ...] = ("round_robin", "least_loaded")
OPS: tuple[str, ...] = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "not_in",
    "contains",
    "matches",
    "exists",
)
NAMESPACES: tuple[str, ...] = ("ticket", "customer", "order", "action", "classifier", "time", "custom")

# The fact catalogue: every fact Bookbag produces (``workflow.tickets.facts``; ``action`` also carries the request's
# scalar params, named here). A merchant's own facts live under ``custom.*`` or ``<namespace>.custom.*``.
# A fact outside the catalogue is an error (E_UNKNOWN_FACT) in the namespaces Bookbag fills itself and a
# warning (W_UNKNOWN_FACT) in ``customer``/``order``, whose fields come from the merchant's systems and were
# free-form before the catalogue existed (a published version with such a fact must still load).
FACTS: Mapping[str, frozenset[str]] = {
    "ticket": frozenset(
        {
            "id",
            "stage",
            "priority",
            "category",
            "body",
            "subject",
            "channel",
            "language",
            "tags",
            "seconds_in_stage",
            "age_seconds",
            "team",
            "assigned",
            "needs_human",
            "sla_breached",
        }
    ),
    "customer": frozenset({"email", "name", "vip", "lifetime_value", "order_count"}),
    "order": frozenset(
        {"id", "total", "currency", "financial_status", "fulfillment_status", "age_days", "delivered"}
    ),
    "action": frozenset(
        {
            "type",
            "actor",
            "amount",
            "currency",
            "target_stage",
            "stage",
            "tag",
            "tags",
            "team",
            "assignee",
            "reason",
            "percent",
            "discount_percent",
            "body",
            "priority",
        }
    ),
    "classifier": frozenset(
        {"category", "category_confidence", "priority", "priority_confidence", "model_version"}
    ),
    "time": frozenset({"hour", "weekday", "business_hours"}),
}
# Namespaces whose unknown fields only warn (see above); ``custom`` is never checked.
OPEN_NAMESPACES: frozenset[str] = frozenset({"customer", "order"})
# Ticket facts validation once accepted that nothing produces: a rule on one never matches (a warning, so
# versions published with them still load).
NEVER_PRODUCED: Mapping[str, frozenset[str]] = {
    "ticket": frozenset({"assignee", "message_count", "reopened_count"}),
}

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Leaf:
    """``{fact: path, OP: value}``; ``path`` is where it sits in the YAML (for traces).

    For ``matches`` the value is the pattern text and ``regex`` its compiled form (built by validation).
    """

    fact: str
    op: str
    value: Any
    path: str
    regex: Regex | None = field(default=None, compare=False, repr=False)

    @property
    def fact_path(self) -> tuple[str, ...]:
        return tuple(self.fact.split("."))


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]
    path: str


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]
    path: str


@dataclass(frozen=True)
class NotOf:
    item: Condition
    path: str


Condition = Leaf | AllOf | AnyOf | NotOf


@dataclass(frozen=True)
class PermissionRule:
    id: str
    effect: str
    actors: tuple[str, ...] | None = None
    actions: tuple[str, ...] | None = None
    stages: tuple[str, ...] | None = None
    when: Condition | None = None
    approvers: tuple[str, ...] = ()
    description: str = ""
    path: str = ""


@dataclass(frozen=True)
class Assign:
    team: str
    strategy: str = "round_robin"
    skills: tuple[str, ...] = ()


# The keys of a routing rule's ``set:`` and of an escalation's ``then:``: validation admits exactly these,
# ingest and the scheduler carry out exactly these.
SET_KEYS: tuple[str, ...] = ("priority", "category", "tags", "needs_human")
THEN_KEYS: tuple[str, ...] = ("transition", "priority", "team", "tags", "needs_human")


@dataclass(frozen=True)
class TicketSet:
    """A routing rule's ``set:``: what a matching rule changes on the new ticket (None/empty: unchanged).

    ``tags`` are added to the ticket's tags; ``needs_human: true`` flags the ticket whatever the handoff
    rules say (the two are OR-ed: ``false`` never clears a handoff)."""

    priority: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    needs_human: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """The keys the rule gave, in ``SET_KEYS`` order (audit, explain, the API's routing details)."""
        return _given(self, SET_KEYS)


@dataclass(frozen=True)
class EscalationThen:
    """An escalation's ``then:``: move the ticket along the graph, raise its priority, move it to another
    team, add tags, flag it for a human (None/empty: unchanged)."""

    transition: str | None = None
    priority: str | None = None
    team: str | None = None
    tags: tuple[str, ...] = ()
    needs_human: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return _given(self, THEN_KEYS)


def _given(value: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        item = getattr(value, key)
        if item is None or item == ():
            continue
        out[key] = list(item) if isinstance(item, tuple) else item
    return out


@dataclass(frozen=True)
class RoutingRule:
    id: str
    when: Condition | None = None
    assign: Assign | None = None
    set: TicketSet = field(default_factory=TicketSet)
    description: str = ""
    path: str = ""


@dataclass(frozen=True)
class SlaTarget:
    first_response: timedelta
    resolution: timedelta


@dataclass(frozen=True)
class EscalationRule:
    id: str
    after: timedelta
    then: EscalationThen
    stages: tuple[str, ...] | None = None
    when: Condition | None = None
    description: str = ""
    path: str = ""


@dataclass(frozen=True)
class HandoffRule:
    id: str
    when: Condition | None = None
    reason: str = ""
    approvers: tuple[str, ...] = ("agent",)
    description: str = ""
    path: str = ""


@dataclass(frozen=True)
class RulesetTest:
    name: str
    facts: Mapping[str, Any]
    expect: Mapping[str, Any]
    path: str = ""


@dataclass(frozen=True)
class Ruleset:
    name: str
    description: str
    stages: tuple[str, ...]
    transitions: Mapping[str, tuple[str, ...]]
    default_effect: str
    permissions: tuple[PermissionRule, ...]
    routing: tuple[RoutingRule, ...]
    sla: Mapping[str, SlaTarget]
    escalations: tuple[EscalationRule, ...]
    handoff: tuple[HandoffRule, ...]
    tests: tuple[RulesetTest, ...]
    digest: str
    source: str = field(repr=False, default="")
    # How long an external action (a refund, say) may stay executing at a partner system before the ticket
    # is flagged for a human (``defaults: {execution_timeout: 15m}``).
    execution_timeout: timedelta = DEFAULT_EXECUTION_TIMEOUT
    # External action types the ruleset declares beyond the built-in ones (``actions: {external: [...]}``):
    # its rules may name them, requestAction accepts them for this ruleset, and they are carried out by a
    # partner system like ``refund``.
    external_actions: tuple[str, ...] = ()
    # The compiled form validation produced (compile.CompiledRuleset), taken once by the engine that
    # loads the ruleset first, so a ruleset is not compiled twice; empty afterwards (nothing kept twice).
    compiled: list[Any] = field(default_factory=list, compare=False, repr=False)

    @property
    def version(self) -> str:
        """Short form of the digest, used as ``ruleset_version`` in decisions."""
        return self.digest[:12]


@dataclass(frozen=True)
class Problem:
    code: str
    message: str
    line: int
    col: int
    path: str
    severity: Literal["error", "warning"] = "error"
    filename: str = "<ruleset>"

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.col} {self.code} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class ValidationReport:
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]
    ruleset: Ruleset | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def in_file_order(self) -> tuple[Problem, ...]:
        """Errors and warnings together, top to bottom (errors first where both sit at one place)."""
        both = [*self.problems, *self.warnings]
        return tuple(sorted(both, key=lambda p: (p.line, p.col)))


class RulesetInvalid(ValueError):
    """Raised by ``load_ruleset`` for a source with errors; ``report`` lists all of them."""

    def __init__(self, report: ValidationReport) -> None:
        first = str(report.problems[0]) if report.problems else "invalid ruleset"
        super().__init__(f"ruleset has {len(report.problems)} problem(s); first: {first}")
        self.report = report


@dataclass(frozen=True)
class Decision:
    """A permission decision. ``explanation`` is written when first read (``explain`` builds it from the
    decision's own rules), so decisions nobody explains - a backtest's, a simulation's effects - skip it;
    every reader (``to_dict``, the audit record, an error message) gets the same sentence."""

    effect: str
    matched_rules: tuple[str, ...]
    deciding_rules: tuple[str, ...]
    approvers: tuple[str, ...]
    handoff: bool
    handoff_rules: tuple[str, ...]
    ruleset_digest: str
    facts: Mapping[str, Any]
    trace: list[dict[str, Any]] | None = None
    explain: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        effect: str,
        matched_rules: tuple[str, ...],
        deciding_rules: tuple[str, ...],
        approvers: tuple[str, ...],
        handoff: bool,
        handoff_rules: tuple[str, ...],
        ruleset_digest: str,
        facts: Mapping[str, Any],
        trace: list[dict[str, Any]] | None,
        explain: Callable[[], str] | None,
    ) -> Decision:
        """The same Decision as the constructor, without the frozen dataclass's ``object.__setattr__`` per
        field (one ``__dict__`` update instead of ten calls: every decision is built here)."""
        decision = object.__new__(cls)
        decision.__dict__.update(
            effect=effect,
            matched_rules=matched_rules,
            deciding_rules=deciding_rules,
            approvers=approvers,
            handoff=handoff,
            handoff_rules=handoff_rules,
            ruleset_digest=ruleset_digest,
            facts=facts,
            trace=trace,
            explain=explain,
        )
        return decision

    @cached_property
    def explanation(self) -> str:
        return self.explain() if self.explain is not None else ""

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. out of a worker process) with the sentence written, not the function."""
        state = dict(self.__dict__)
        state["explanation"] = self.explanation
        state["explain"] = None
        return state

    @property
    def ruleset_version(self) -> str:
        return self.ruleset_digest[:12]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "effect": self.effect,
            "matched_rules": list(self.matched_rules),
            "deciding_rules": list(self.deciding_rules),
            "approvers": list(self.approvers),
            "handoff": self.handoff,
            "handoff_rules": list(self.handoff_rules),
            "explanation": self.explanation,
            "ruleset_version": self.ruleset_version,
            "ruleset_digest": self.ruleset_digest,
            "facts": _json_safe(self.facts),
        }
        if self.trace is not None:
            out["trace"] = _json_safe(self.trace)
        return out


@dataclass(frozen=True)
class RoutingDecision:
    rule_id: str | None
    team: str | None
    strategy: str | None
    skills: tuple[str, ...]
    set: TicketSet
    explanation: str
    ruleset_digest: str
    facts: Mapping[str, Any]
    trace: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "team": self.team,
            "strategy": self.strategy,
            "skills": list(self.skills),
            "set": _json_safe(self.set.to_dict()),
            "explanation": self.explanation,
            "ruleset_version": self.ruleset_digest[:12],
            "facts": _json_safe(self.facts),
        }
        if self.trace is not None:
            out["trace"] = _json_safe(self.trace)
        return out


@dataclass(frozen=True)
class RulesetTestResult:
    name: str
    passed: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "message": self.message}


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _json_safe(value: Any) -> Any:
    t = type(value)
    if t in _JSON_SCALARS:  # the usual cases first: an ABC isinstance check costs more than the copy
        return value
    if t is dict:
        return {k if type(k) is str else str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
