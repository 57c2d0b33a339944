"""The metrics seam: what the workflow tells an observer about itself, without knowing who listens.

The composition root (``bookbag.metrics``) passes a Prometheus-backed implementation in
``WorkflowServices.metrics``; everything else (tests, the CLI, simulations) gets :class:`NoMetrics`, which
does nothing. Calls happen on the hot paths, so an implementation must be cheap and must never raise.
"""

from __future__ import annotations

from typing import Protocol


class WorkflowMetrics(Protocol):
    def policy_decision(self, effect: str, actor: str, action: str) -> None:
        """A permission decision of the rules (``allow``/``require_approval``/``deny``) for an action."""

    def classified(self, seconds: float, tickets: int) -> None:
        """One classifier call over ``tickets`` tickets took ``seconds``."""

    def group_committed(self, operation: str, size: int) -> None:
        """A group commit of ``operation`` wrote ``size`` requests in one unit of work."""


class NoMetrics:
    """The observer that records nothing."""

    def policy_decision(self, effect: str, actor: str, action: str) -> None:
        pass

    def classified(self, seconds: float, tickets: int) -> None:
        pass

    def group_committed(self, operation: str, size: int) -> None:
        pass
