"""Value types of the classifier facade: what goes in, what comes out, what a loaded model says about itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classifier.cleaning import clean_body

DEFAULT_CATEGORIES: tuple[str, ...] = (
    "order_status",
    "shipping_delivery",
    "cancel_order",
    "order_change",
    "refund_return",
    "payment_billing",
    "invoice",
    "account",
    "product_question",
    "complaint_feedback",
    "other",
)
DEFAULT_PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "low")
FALLBACK_CATEGORY = "other"


class ClassifierError(Exception):
    """Bad model directory, bad training data or bad input: the message is meant for a human."""


@dataclass(frozen=True)
class TicketInput:
    subject: str = ""
    body: str = ""
    channel: str | None = None
    customer_vip: bool | None = None
    customer_lifetime_value: float | None = None
    customer_order_count: int | None = None
    order_total: float | None = None
    order_financial_status: str | None = None
    order_fulfillment_status: str | None = None
    prior_contacts: int | None = None

    @classmethod
    def from_mapping(cls, row: dict[str, Any]) -> TicketInput:
        """Build from a JSON-like row, ignoring unknown keys and coercing loose types (CSV strings)."""
        return cls(
            subject=_text(row.get("subject")),
            # `text` is what `train` reads when a file has no subject/body columns; a prediction input may use it too.
            body=_text(row.get("body") if row.get("body") is not None else row.get("text")),
            channel=_opt_str(row.get("channel")),
            customer_vip=_opt_bool(row.get("customer_vip")),
            customer_lifetime_value=_opt_float(row.get("customer_lifetime_value")),
            customer_order_count=_opt_int(row.get("customer_order_count")),
            order_total=_opt_float(row.get("order_total")),
            order_financial_status=_opt_str(row.get("order_financial_status")),
            order_fulfillment_status=_opt_str(row.get("order_fulfillment_status")),
            prior_contacts=_opt_int(row.get("prior_contacts")),
        )

    @property
    def text(self) -> str:
        """Subject and raw body, as the ticket arrived."""
        return f"{self.subject}\n{self.body}" if self.subject else self.body

    @property
    def clean_text(self) -> str:
        """Subject and the cleaned body (`classifier.cleaning`): what the features of training and serving read."""
        body = clean_body(self.body)
        return f"{self.subject}\n{body}" if self.subject else body


@dataclass(frozen=True)
class Prediction:
    category: str
    category_confidence: float
    priority: str
    priority_confidence: float
    model_version: str
    # The model's own top label before the confidence threshold turned it into "other".
    raw_category: str = ""
    raw_category_confidence: float = 0.0

    def to_facts(self) -> dict[str, Any]:
        """The `classifier` namespace the rules see."""
        return {
            "category": self.category,
            "category_confidence": round(self.category_confidence, 4),
            "priority": self.priority,
            "priority_confidence": round(self.priority_confidence, 4),
            "model_version": self.model_version,
            "raw_category": self.raw_category or self.category,
            "raw_category_confidence": round(self.raw_category_confidence, 4),
        }


@dataclass(frozen=True)
class ModelInfo:
    version: str
    labels: tuple[str, ...]
    priorities: tuple[str, ...]
    trained_at: str
    data_hash: str
    metrics: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _opt_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _opt_int(value: Any) -> int | None:
    number = _opt_float(value)
    return None if number is None else int(number)


def _opt_bool(value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "y", "t"}:
        return True
    if text in {"0", "false", "no", "n", "f"}:
        return False
    return None
