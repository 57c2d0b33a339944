"""Workflow fixtures: the real policy engine and the shipped classifier, with a clock tests can move."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

import classifier
from policy import PolicyEngine
from workflow.services import WorkflowServices


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(scope="session")
def shipped_classifier() -> classifier.Classifier:
    return classifier.Classifier.load(classifier.default_model_dir())


@pytest.fixture(scope="session")
def policy_engine() -> PolicyEngine:
    return PolicyEngine()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))


@pytest.fixture
def services(
    policy_engine: PolicyEngine, shipped_classifier: classifier.Classifier, clock: Clock
) -> WorkflowServices:
    return WorkflowServices(policy=policy_engine, classifier=shipped_classifier, clock=clock)
