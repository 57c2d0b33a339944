"""Value types and the shared feature code."""

from __future__ import annotations

import numpy as np

from classifier import Prediction, TicketInput
from classifier.features import (
    TextFeaturizer,
    _char_vectorizer,
    _CharCounter,
    metadata_features,
    normalize_text,
)


def test_ticket_from_mapping_coerces_csv_strings() -> None:
    t = TicketInput.from_mapping(
        {
            "subject": "Hi",
            "body": None,
            "customer_vip": "yes",
            "order_total": "12.5",
            "prior_contacts": "3.0",
            "x": 1,
        }
    )
    assert t == TicketInput(subject="Hi", body="", customer_vip=True, order_total=12.5, prior_contacts=3)
    assert TicketInput.from_mapping({"customer_vip": "maybe", "order_total": "n/a"}).order_total is None


def test_prediction_facts_carry_raw_label() -> None:
    p = Prediction("other", 0.31, "high", 0.8, "v1", raw_category="invoice", raw_category_confidence=0.31)
    facts = p.to_facts()
    assert facts["category"] == "other" and facts["raw_category"] == "invoice"
    assert set(facts) >= {
        "category",
        "category_confidence",
        "priority",
        "priority_confidence",
        "model_version",
    }


def test_features_read_cleaned_text_with_identifiers_replaced_and_concepts_marked() -> None:
    body = (
        "Where is order #48213? I paid $59.99, mail me at ann@example.com\n\n"
        "On Mon, Shop Support <s@example.com> wrote:\n> Your refund is approved"
    )
    out = normalize_text(TicketInput(body=body).clean_text)
    assert "48213" not in out and "59.99" not in out and "ann@" not in out
    assert "xref" in out and "xmoney" in out and "xemail" in out
    assert "refund" not in out  # quoted history, dropped by classifier.cleaning
    german = normalize_text("Bitte stornieren Sie die Bestellung")
    assert german == "bitte stornieren cancel sie die bestellung order"
    english = "please cancel the order, where is my parcel"
    assert normalize_text(english) == english  # English text is left as it is
    assert normalize_text("Bitte stornieren", concepts=False) == "bitte stornieren"


def test_feature_files_without_the_concepts_flag_keep_their_old_normalisation() -> None:
    texts = ["cancel my order please", "where is my parcel", "invoice for my company", "cancel it now"] * 3
    f = TextFeaturizer.fit(
        texts, [["c", "s", "i", "c"] * 3], max_word_features=50, max_char_features=80, max_tree_features=20
    )
    data = f.to_json()
    assert data["concepts"] is True
    del data["concepts"]
    old = TextFeaturizer.from_json(data)
    assert old.concepts is False


def test_featurizer_json_round_trip_is_identical() -> None:
    texts = ["cancel my order please", "where is my parcel", "invoice for my company", "cancel it now"] * 3
    labels = [["cancel", "status", "invoice", "cancel"] * 3]
    f = TextFeaturizer.fit(texts, labels, max_word_features=50, max_char_features=80, max_tree_features=20)
    g = TextFeaturizer.from_json(f.to_json())
    a, b = f.transform(["please cancel"]), g.transform(["please cancel"])
    assert a.shape == b.shape and np.allclose(a.toarray(), b.toarray(), atol=1e-4)
    assert f.n_tree_features == 20


def test_metadata_unknown_is_nan_known_is_encoded() -> None:
    m = metadata_features([TicketInput(), TicketInput(channel="Chat", customer_vip=False, prior_contacts=2)])
    assert np.isnan(m[0]).all()
    assert m[1][1] == 1.0 and m[1][0] == 0.0  # channel=chat one-hot


def test_memoised_char_counts_equal_count_vectorizer() -> None:
    texts = [
        "where is my order xref, it was due tuesday!!",
        "refund refund refund please",
        "",
        "a",
        "  double   spaced\ttabs\nand lines ",
        "ünïcødé façade naïve",
        "supercalifragilisticexpialidocious charged twice",
    ]
    vocab = sorted({g for t in texts for g in _char_vectorizer(None, 1).build_analyzer()(t)})[::2]
    reference = _char_vectorizer({g: i for i, g in enumerate(vocab)}, 1).transform(texts)
    reference.sort_indices()
    counter = _CharCounter(vocab)
    for _ in range(2):  # cold memo, then warm
        ours = counter.transform(texts)
        assert ours.shape == reference.shape and ours.dtype == reference.dtype
        assert np.array_equal(ours.indptr, reference.indptr)
        assert np.array_equal(ours.indices, reference.indices)
        assert np.array_equal(ours.data, reference.data)
