"""A virtual clock for escalations: given a ticket's facts and its stage timeline, when would each escalation
rule fire — without waiting for it and without touching the database.

The rules are evaluated by the policy engine exactly as the scheduler evaluates them (``escalations_due`` on
the ticket's facts at a moment, ``ticket.seconds_in_stage`` being the time since the stay began). A rule
becomes a candidate once its ``after:`` has passed in a stay; if its ``when:`` does not hold at that moment
(say it depends on business hours) it is looked at again every ``step`` until the stay ends. A firing whose
``then`` moves the ticket ends the stay and begins a new one in the target stage, as the scheduler would
(the remaining rules of the old stay are not considered), so escalation chains show up in order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from policy import EscalationRule, EscalationThen, PolicyEngine, Ruleset
from workflow.errors import invalid
from workflow.stages import CLOSED_STAGES, OPEN_STAGES
from workflow.tickets.facts import time_facts

MAX_FIRINGS = 100


@dataclass(frozen=True)
class StageEntry:
    """The ticket entered ``stage`` at ``at`` (the first entry is the ticket's creation)."""

    at: datetime
    stage: str


@dataclass(frozen=True)
class PlannedFiring:
    rule_id: str
    stage: str
    stage_entered_at: datetime
    fires_at: datetime
    then: EscalationThen = field(default_factory=EscalationThen)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "stage": self.stage,
            "stage_entered_at": self.stage_entered_at.isoformat(),
            "fires_at": self.fires_at.isoformat(),
            "after_stage_entry_seconds": (self.fires_at - self.stage_entered_at).total_seconds(),
            "then": self.then.to_dict(),
        }


def facts_at(
    base: Mapping[str, Any], stage: str, entered: datetime, created: datetime, now: datetime
) -> dict[str, Any]:
    """The facts the scheduler would see at ``now`` for a ticket in ``stage`` since ``entered``."""
    facts = copy.deepcopy(dict(base))
    ticket = dict(facts.get("ticket") or {})
    ticket["stage"] = stage
    ticket["seconds_in_stage"] = max(0.0, (now - entered).total_seconds())
    ticket["age_seconds"] = max(0.0, (now - created).total_seconds())
    facts["ticket"] = ticket
    facts["time"] = time_facts(now)
    return facts


def _moves_to(ruleset: Ruleset, stage: str, then: EscalationThen) -> str | None:
    """The stage a firing moves the ticket to; None when it stays (or the graph forbids the move, which the
    scheduler records as skipped)."""
    target = then.transition
    if target is not None and target != stage and target in ruleset.transitions.get(stage, ()):
        return target
    return None


def _rules_for(ruleset: Ruleset, stage: str) -> list[EscalationRule]:
    rules = [r for r in ruleset.escalations if (stage in r.stages if r.stages else stage in OPEN_STAGES)]
    return sorted(rules, key=lambda r: (r.after, r.id))


def escalation_timeline(
    policy: PolicyEngine,
    ruleset: Ruleset,
    facts: Mapping[str, Any],
    entries: Sequence[StageEntry],
    *,
    until: datetime,
    step: timedelta = timedelta(minutes=5),
) -> list[PlannedFiring]:
    """Every escalation that would fire between the first entry and ``until``, in order."""
    if not entries:
        raise invalid("a timeline needs at least one stage entry", "timeline")
    ordered = list(entries)
    if any(b.at < a.at for a, b in pairwise(ordered)):
        raise invalid("timeline entries must be in time order", "timeline")
    if step <= timedelta(0):
        raise invalid("step must be positive", "step")
    created = ordered[0].at
    planned: list[PlannedFiring] = []
    # Stays come from the given entries; a firing that moves the ticket inserts a stay of its own and
    # the given entries after it still apply (the timeline says what happened to the ticket anyway).
    pending = list(ordered)
    while pending and len(planned) < MAX_FIRINGS:
        entry = pending.pop(0)
        ends = min(pending[0].at if pending else until, until)
        if entry.stage in CLOSED_STAGES:
            continue
        fired = _first_firing(policy, ruleset, facts, entry, created, ends, step)
        if fired is None:
            continue
        planned.extend(fired)
        last = fired[-1]
        target = _moves_to(ruleset, entry.stage, last.then)
        if target is not None:
            pending.insert(0, StageEntry(at=last.fires_at, stage=target))
    return planned


def _first_firing(
    policy: PolicyEngine,
    ruleset: Ruleset,
    base: Mapping[str, Any],
    entry: StageEntry,
    created: datetime,
    ends: datetime,
    step: timedelta,
) -> list[PlannedFiring] | None:
    """The rules that fire during this stay, up to and including the first one that moves the ticket."""
    rules = _rules_for(ruleset, entry.stage)
    fired: list[PlannedFiring] = []
    done: set[str] = set()
    moments = sorted({entry.at + r.after for r in rules if entry.at + r.after < ends})
    while moments:
        now = moments.pop(0)
        due = {
            r.id for r in policy.escalations_due(ruleset, facts_at(base, entry.stage, entry.at, created, now))
        }
        for rule in rules:
            if rule.id in done or entry.at + rule.after > now:
                continue
            if rule.id in due:
                done.add(rule.id)
                firing = PlannedFiring(rule.id, entry.stage, entry.at, now, rule.then)
                fired.append(firing)
                if _moves_to(ruleset, entry.stage, rule.then) is not None:
                    return fired
            elif now + step < ends:
                moments.append(now + step)  # not due yet (its `when` may depend on the time): look again
        moments = sorted(set(moments))
    return fired or None
