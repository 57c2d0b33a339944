"""Builds the long-lived workflow services (policy engine, classifier, event bus) from settings."""

from __future__ import annotations

import classifier
from bookbag.settings import Settings
from classifier.language import LanguageDetector
from policy import PolicyEngine, RulesetLimits
from workflow.rulesets.cache import RulesetCache
from workflow.services import WorkflowServices


def ruleset_limits(settings: Settings) -> RulesetLimits:
    return RulesetLimits(
        max_source_bytes=settings.ruleset_max_source_bytes,
        max_yaml_nodes=settings.ruleset_max_yaml_nodes,
        max_depth=settings.ruleset_max_depth,
        max_rules=settings.ruleset_max_rules,
        regex_max_text_chars=settings.regex_max_text_chars,
        regex_max_mem_bytes=settings.regex_max_mem_bytes,
    )


def build_services(settings: Settings) -> WorkflowServices:
    model_dir = settings.model_dir or classifier.default_model_dir()
    model = classifier.Classifier.load(model_dir, confidence_threshold=settings.confidence_threshold)
    languages = [code.strip().lower() for code in settings.languages.split(",") if code.strip()]
    return WorkflowServices(
        policy=PolicyEngine(settings.policy_max_compiled, max_drafts=settings.policy_max_drafts),
        classifier=model,
        rulesets=RulesetCache(limits=ruleset_limits(settings)),
        language=LanguageDetector(languages),
    )
