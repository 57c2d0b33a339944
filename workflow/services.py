"""The long-lived dependencies of the workflow services, built once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from classifier import Classifier
from classifier.language import LanguageDetector
from policy import PolicyEngine
from workflow.live.bus import EventBus
from workflow.metrics import NoMetrics, WorkflowMetrics
from workflow.rulesets.cache import RulesetCache


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkflowServices:
    policy: PolicyEngine
    classifier: Classifier
    bus: EventBus = field(default_factory=EventBus)
    clock: Callable[[], datetime] = system_clock
    rulesets: RulesetCache = field(default_factory=RulesetCache)
    metrics: WorkflowMetrics = field(default_factory=NoMetrics)  # bookbag.metrics when /metrics is on
    # The `ticket.language` fact, detected once at ingest and stored on the ticket.
    language: LanguageDetector = field(default_factory=LanguageDetector)

    def __post_init__(self) -> None:
        self.bus.bind_clock(self.clock)  # webhook outbox rows are due at the workflow's time
