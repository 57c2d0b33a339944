"""The shipped default model: it loads, matches the committed seed set, and behaves sensibly.

Behavioural checks in the CheckList style: minimum functionality per category (fresh sentences written for this
test, not taken from the seed items), invariance to names / order numbers / signatures, and a directional check
that mentioning a double charge raises priority.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from classifier import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES, Classifier, TicketInput, default_model_dir
from classifier.dataset import data_hash
from classifier.default import load_seed
from classifier.seed.compose import HOLDOUT_FILE, TRAIN_FILE, compose
from classifier.seed.items import load_items


def test_shipped_model_describes_itself(shipped: Classifier) -> None:
    info = shipped.info
    assert info.version.startswith("default-")
    assert info.labels == DEFAULT_CATEGORIES and info.priorities == DEFAULT_PRIORITIES
    assert info.data_hash == data_hash(load_seed(TRAIN_FILE))  # built from the committed seed rows
    holdout = info.metrics["holdout"]
    assert holdout["category"]["n"] == sum(1 for _ in HOLDOUT_FILE.open())
    size = sum(p.stat().st_size for p in default_model_dir().iterdir())
    assert size < 8_000_000


def test_committed_seed_rows_are_reproducible_and_split_by_item() -> None:
    train, holdout = compose(load_items())
    assert [json.loads(line) for line in TRAIN_FILE.open()] == train
    assert [json.loads(line) for line in HOLDOUT_FILE.open()] == holdout
    assert not {r["source"] for r in train} & {r["source"] for r in holdout}
    for rows in (train, holdout):
        assert {r["category"] for r in rows} == set(DEFAULT_CATEGORIES)
        assert {r["priority"] for r in rows} == set(DEFAULT_PRIORITIES)


MINIMUM = {
    "order_status": [
        "Hi, my order still hasn't shown up. Do you know when it will get here?",
        "Can you give me an update on where my package is?",
    ],
    "shipping_delivery": [
        "Do you offer express delivery to Spain?",
        "The courier marked my parcel as delivered but I never got it.",
    ],
    "cancel_order": [
        "Please cancel my order, I don't need it any more.",
        "I'd like to cancel the purchase I made this morning.",
    ],
    "order_change": [
        "Can I change the size on my order from medium to large before it ships?",
        "I need to add one more item to the order I just placed.",
    ],
    "refund_return": [
        "How do I return these jeans? They don't fit.",
        "I sent my return back two weeks ago and still haven't got my refund.",
    ],
    "payment_billing": [
        "My card was declined at checkout even though it has funds.",
        "Your discount code isn't working on my order.",
    ],
    "invoice": [
        "Could you email me an invoice for my last purchase?",
        "I need a receipt with my company's VAT number on it.",
    ],
    "account": [
        "I can't log in, the password reset email never arrives.",
        "Please delete my account and my data.",
    ],
    "product_question": [
        "Is this jacket true to size or should I size up?",
        "What material is the blanket made from? Is it machine washable?",
    ],
    "complaint_feedback": [
        "Just wanted to say thank you, the sweater is beautiful and arrived fast!",
        "Really disappointed with your service lately, it has gone downhill.",
    ],
    "other": [
        "Can I speak to a human please?",
        "We're a boutique and would like to discuss wholesale prices.",
    ],
}


@pytest.mark.parametrize("category", DEFAULT_CATEGORIES)
def test_minimum_functionality_per_category(shipped: Classifier, category: str) -> None:
    for text in MINIMUM[category]:
        assert shipped.predict(TicketInput(body=text)).raw_category == category, text


BASES = [
    ("Where is my order {order}? It's been a week. Thanks, {name}", "email"),
    ("Hi, please cancel order {order}, I ordered the wrong colour.\n\n{sig}", "email"),
    ("I returned the dress last week, when will I get my refund? Order {order}. {sig}", "contact_form"),
    ("hi can you send me an invoice for order {order}", "chat"),
    ("Does the {name} backpack fit a 15 inch laptop?", "chat"),
]
VARIANTS = [
    {"order": "#10234", "name": "Anna", "sig": "Best regards,\nAnna Kovacs"},
    {"order": "BB-99871", "name": "Juan", "sig": "Sent from my iPhone"},
    {"order": "55512", "name": "Mei", "sig": "Cheers\nMei\n+44 7700 900123"},
    {"order": "#2047", "name": "Olu", "sig": ""},
]


@pytest.mark.parametrize(("template", "channel"), BASES)
def test_invariance_to_names_orders_and_signatures(shipped: Classifier, template: str, channel: str) -> None:
    tickets = [TicketInput(body=template.format(**v), channel=channel) for v in VARIANTS]
    predictions = shipped.predict_batch(tickets)
    assert len({p.raw_category for p in predictions}) == 1, predictions
    # Priority between neighbouring levels can be a genuine toss-up ("it's been a week"), so invariance is
    # asserted on the probabilities: swapping identities must not move any of them materially.
    _, priority = shipped.predict_proba(tickets)
    assert priority is not None
    assert float(np.ptp(priority, axis=0).max()) < 0.15, priority.round(2)


DIRECTIONAL = [
    "Hi, where is my order? It should have arrived by now.",
    "Can I change the delivery address on my order?",
    "I'd like to return the shoes, they're too small.",
    "Could you send me an invoice for my order please?",
    "Do you have the blue one in stock?",
]


@pytest.mark.parametrize("text", DIRECTIONAL)
def test_adding_a_double_charge_raises_priority(shipped: Classifier, text: str) -> None:
    after = shipped.predict(TicketInput(body=text + " Also, I've been charged twice for it!"))
    assert after.priority == "urgent", after
    _, proba_before = shipped.predict_proba([TicketInput(body=text)])
    _, proba_after = shipped.predict_proba(
        [TicketInput(body=text + " Also, I've been charged twice for it!")]
    )
    assert proba_before is not None and proba_after is not None
    assert proba_after[0, 0] > proba_before[0, 0]  # column 0 = urgent


def test_metadata_reaches_priority(shipped: Classifier) -> None:
    base = TicketInput(body="Hi, any news on my order?", channel="email", prior_contacts=0)
    repeat = TicketInput(body="Hi, any news on my order?", channel="email", prior_contacts=5)
    _, p0 = shipped.predict_proba([base])
    _, p5 = shipped.predict_proba([repeat])
    assert p0 is not None and p5 is not None
    assert not np.allclose(p0, p5)


def test_shipped_model_is_thread_safe(shipped: Classifier) -> None:
    tickets = [TicketInput(body=t) for texts in MINIMUM.values() for t in texts]
    expected = shipped.predict_batch(tickets)
    results: list[bool] = []

    def work() -> None:
        results.append([shipped.predict(t) for t in tickets] == expected)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 6


ISSUE_HTML_THREAD = """<html><body><div dir="ltr">Hi, please cancel order #44120, I won't need it after all.<br><br>
Thanks<br>Maya</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, 24 Nov 2026 at 16:40,
Willow Lane &lt;hello@willowlane.example&gt; wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px
0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"><div>Your parcel is on its way! The courier
will deliver it on Thursday between 9:00 and 13:00. Track your shipment with the link below. If you are not at
home, the driver will leave a card with the depot's opening hours.</div></blockquote></div></body></html>"""


def test_an_html_cancellation_above_a_quoted_shipping_thread_is_a_cancellation(shipped: Classifier) -> None:
    """The issue's example: the quoted Gmail thread about shipping no longer drowns the new request."""
    html = shipped.predict(TicketInput(subject="Re: Your parcel is on its way", body=ISSUE_HTML_THREAD))
    plain = shipped.predict(
        TicketInput(
            subject="Re: Your parcel is on its way",
            body="Hi, please cancel order #44120, I won't need it after all.\n\nThanks\nMaya",
        )
    )
    assert html.raw_category == plain.raw_category == "cancel_order"
    assert abs(html.raw_category_confidence - plain.raw_category_confidence) < 0.05
