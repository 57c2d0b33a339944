"""No paraphrase crosses a split: the seed hold-out against the seed training items, and the fresh hand-written
hold-out of the benchmark (bench/data/fresh_holdout.txt) against every seed item."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from classifier.cleaning import clean_body
from classifier.seed.compose import holdout_ids
from classifier.seed.items import LANGUAGES, load_items, parse_messages
from classifier.types import DEFAULT_CATEGORIES

FRESH_HOLDOUT = Path(__file__).resolve().parents[2] / "bench" / "data" / "fresh_holdout.txt"
# Two texts share wording when at least this many word 3-grams, and at least this share of the shorter text's,
# are the same (placeholders such as {order} removed).
MIN_SHARED, MIN_SHARE = 6, 0.5


def shingles(text: str) -> set[str]:
    words = re.findall(r"\w+", re.sub(r"\{\w+\}", " ", text.lower()))
    return {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}


def paraphrases(a: dict[str, set[str]], b: dict[str, set[str]]) -> list[tuple[str, str]]:
    found = []
    for name_a, sa in a.items():
        for name_b, sb in b.items():
            shared = len(sa & sb)
            if sa and sb and shared >= MIN_SHARED and shared / min(len(sa), len(sb)) >= MIN_SHARE:
                found.append((name_a, name_b))
    return found


def test_no_seed_holdout_item_paraphrases_a_training_item() -> None:
    items = load_items()
    held = holdout_ids(items)
    text = {i.item_id: shingles(f"{i.subject} {i.body}") for i in items}
    train = {k: v for k, v in text.items() if k not in held}
    assert paraphrases({k: v for k, v in text.items() if k in held}, train) == []


def test_translations_of_a_held_out_scenario_are_all_held_out() -> None:
    """Items in other languages are parallel scenarios: the k-th item of each language in a category tells the
    same story, so a held-out scenario must be held out in every language (else a translation is trained on)."""
    items = load_items()
    held = holdout_ids(items)
    scenarios: dict[tuple[str, int], set[bool]] = defaultdict(set)
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for item in items:
        if item.language == "en":
            continue
        k = seen[(item.category, item.language)]
        seen[(item.category, item.language)] += 1
        scenarios[(item.category, k)].add(item.item_id in held)
    assert all(len(sides) == 1 for sides in scenarios.values())
    assert any(True in sides for sides in scenarios.values())
    for category in DEFAULT_CATEGORIES:
        for language in LANGUAGES[1:]:  # every category in every other language
            assert seen[(category, language)] >= 5, (category, language)


def test_fresh_holdout_paraphrases_no_seed_item() -> None:
    messages = parse_messages(FRESH_HOLDOUT.read_text(encoding="utf-8"))
    assert len(messages) >= 150
    assert {m.language for m in messages} == set(LANGUAGES)
    assert LANGUAGES[0] == "en"
    assert sum(m.html for m in messages) >= 30
    fresh = {f"fresh/{n}": shingles(f"{m.subject} {clean_body(m.body)}") for n, m in enumerate(messages)}
    seed = {i.item_id: shingles(f"{i.subject} {i.body}") for i in load_items()}
    assert paraphrases(fresh, seed) == []
