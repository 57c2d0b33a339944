"""Builds the long-lived workflow services (policy engine, classifier, event bus) from settings."""

from __future__ import annotations

import classifier
from bookbag.settings import Settings
from classifier.candidates import GateMargins, LearningConfig, ModelCache
from classifier.language import LanguageDetector
from classifier.training import TrainConfig
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
        models=ModelCache(settings.classifier_models_cached),
        learning=learning_config(settings),
    )


def learning_config(settings: Settings) -> LearningConfig:
    """How a merchant's model is trained and judged (classifier.candidates)."""
    return LearningConfig(
        seed_rows=settings.learning_seed_rows,
        seed_holdout_rows=settings.learning_seed_holdout_rows,
        max_corrections=settings.learning_max_corrections,
        train=TrainConfig(max_rounds=settings.learning_max_rounds),
        margins=GateMargins(
            macro_f1=settings.learning_gate_f1_margin,
            accuracy=settings.learning_gate_accuracy_margin,
            ece=settings.learning_gate_ece_margin,
        ),
    )
