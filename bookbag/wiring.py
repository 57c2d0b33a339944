"""Builds the long-lived workflow services (policy engine, classifier, event bus) from settings."""

from __future__ import annotations

import classifier
from bookbag.settings import Settings
from policy import PolicyEngine
from workflow.services import WorkflowServices


def build_services(settings: Settings) -> WorkflowServices:
    model_dir = settings.model_dir or classifier.default_model_dir()
    model = classifier.Classifier.load(model_dir, confidence_threshold=settings.confidence_threshold)
    return WorkflowServices(policy=PolicyEngine(), classifier=model)
