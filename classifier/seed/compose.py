"""Deterministically vary the hand-written seed items into labelled ticket rows (JSONL).

Every item is rendered several times with different customers, orders, products, channels, greetings,
signatures, quoted history (some as HTML), typos and ticket metadata. The hold-out is chosen by item (every fifth
English item of each category; for other languages whole scenarios in every language, `holdout_ids`) and renders
with its own share of every filler pool, so it shares no source text with training.

Label rule applied on top of an item's own priority (documented so it is not mistaken for noise): a `normal`
ticket from a customer who already contacted us three or more times about it becomes `high` (angry repeat
contact, per the taxonomy).
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from classifier.seed import pools
from classifier.seed.items import SeedItem, load_items

SEED_DIR = Path(__file__).parent
TRAIN_FILE = SEED_DIR / "train.jsonl"
HOLDOUT_FILE = SEED_DIR / "holdout.jsonl"
TRAIN_VARIANTS = 6
# Items written in the other languages are rendered more often: there are far fewer of them than English items.
TRAIN_VARIANTS_TRANSLATED = 8
HOLDOUT_VARIANTS = 8
# Share of email renderings written as HTML (quoted reply in a Gmail, Apple Mail or Outlook container).
HTML_SHARE = 0.2
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def scenario_ids(items: Sequence[SeedItem]) -> dict[str, str]:
    """Item id -> its scenario: an English item is its own; the k-th item of a category in each other language
    tells the same story, so they share `<category>/translated-<k>`. Training groups rows by scenario (the
    validation slice and the stacking folds), so a translation never scores its own original."""
    out: dict[str, str] = {}
    seen: dict[tuple[str, str], int] = {}
    for item in items:
        if item.language == "en":
            out[item.item_id] = item.item_id
            continue
        k = seen.get((item.category, item.language), 0)
        seen[(item.category, item.language)] = k + 1
        out[item.item_id] = f"{item.category}/translated-{k:03d}"
    return out


def holdout_ids(items: Sequence[SeedItem]) -> set[str]:
    """Items of the hold-out. English: every fifth item of each category. Other languages: the items of a
    category are written as parallel scenarios (the k-th Spanish, German, … item of a category tell the same
    story), so a scenario is held out in every language at once (k % 4 == 1): a translation of a held-out item
    is never trained on."""
    held: set[str] = set()
    seen: dict[tuple[str, str], int] = {}
    for item in items:
        if item.language == "en":
            if int(item.item_id.rsplit("/", 1)[1]) % 5 == 2:
                held.add(item.item_id)
            continue
        k = seen.get((item.category, item.language), 0)
        seen[(item.category, item.language)] = k + 1
        if k % 4 == 1:
            held.add(item.item_id)
    return held


def compose(items: Sequence[SeedItem]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training rows, hold-out rows) for the given items, identical on every run."""
    train: list[dict[str, Any]] = []
    holdout: list[dict[str, Any]] = []
    held_ids = holdout_ids(items)
    scenarios = scenario_ids(items)
    for item in items:
        held = item.item_id in held_ids
        if held:
            variants = HOLDOUT_VARIANTS
        else:
            variants = TRAIN_VARIANTS if item.language == "en" else TRAIN_VARIANTS_TRANSLATED
        for variant in range(variants):
            row = render(item, variant, held)
            row["scenario"] = scenarios[item.item_id]
            (holdout if held else train).append(row)
    return train, holdout


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def render(item: SeedItem, variant: int, holdout: bool) -> dict[str, Any]:
    rng = _rng(item.item_id, variant)

    def pool(values: list[str]) -> list[str]:
        return pools.split_pool(values, holdout)

    channel = item.channel
    if channel == "any":
        channel = rng.choices(["email", "chat", "contact_form"], weights=[5, 3, 2])[0]
    first = rng.choice(pool(pools.FIRST_NAMES))
    last = rng.choice(pool(pools.LAST_NAMES))
    products = pool(pools.PRODUCTS)
    product, product2 = rng.sample(products, 2)
    fill = {
        "name": first,
        "fullname": f"{first} {last}",
        "store": rng.choice(pool(pools.STORES)),
        "order": _order_number(rng),
        "order2": _order_number(rng),
        "product": product,
        "product2": product2,
        "date": rng.choice(pool(pools.DATES)),
        "amount": f"{rng.uniform(9, 400):.2f}",
        "size": rng.choice(pool(pools.SIZES)),
        "city": rng.choice(pool(pools.CITIES)),
        "street": rng.choice(pool(pools.STREETS)),
        "email": f"{first.lower()}.{_ascii(last).lower()}{rng.randint(1, 99)}@{rng.choice(['gmail.com', 'outlook.com', 'yahoo.com', 'icloud.com', 'proton.me'])}",
        "phone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
        "tracking": f"1Z{rng.randint(10**9, 10**10 - 1)}",
        "days": str(rng.randint(3, 21)),
        "topic": rng.choice(pools.FORM_TOPICS),
    }
    body = _typos(_fill(item.body, fill), rng, rate=rng.choice([0.0, 0.0, 0.02, 0.05]))
    subject = _fill(item.subject, fill)
    if channel == "email":
        text, subject = _email(body, subject, fill, rng, pool, item.language)
    elif channel == "chat":
        text, subject = _chat(body, rng, pool, item.language)
    else:
        text, subject = _form(body, subject, fill, rng, pool)
    meta = _metadata(item, channel, rng)
    priority = item.priority
    if priority == "normal" and (meta["prior_contacts"] or 0) >= 3:
        priority = "high"
    return {
        "id": f"{item.item_id}#{variant}",
        "source": item.item_id,
        "split": "holdout" if holdout else "train",
        "language": item.language,
        "subject": subject,
        "body": text,
        **meta,
        "category": item.category,
        "priority": priority,
    }


def _ascii(text: str) -> str:
    return re.sub(r"[^A-Za-z]", "", text.replace("ü", "u"))


def _order_number(rng: random.Random) -> str:
    number = rng.randint(1000, 99999)
    style = rng.randrange(5)
    return [f"#{number}", str(number), f"BB-{number}", f"#BB{number}", f"No. {number}"][style]


def _fill(template: str, values: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _typos(text: str, rng: random.Random, rate: float) -> str:
    if rate <= 0:
        return text
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) < 4 or not word.isalpha() or rng.random() >= rate:
            continue
        k = rng.randrange(1, len(word) - 1)
        kind = rng.randrange(3)
        if kind == 0:
            word = word[:k] + word[k + 1] + word[k] + word[k + 2 :]
        elif kind == 1:
            word = word[:k] + word[k + 1 :]
        else:
            word = word[:k] + word[k] + word[k:]
        words[i] = word
    return " ".join(words)


def _email(
    body: str, subject: str, fill: dict[str, str], rng: random.Random, pool: Any, language: str
) -> tuple[str, str]:
    english = language == "en"
    parts = []
    if rng.random() < 0.75:
        greetings = pools.GREETINGS_EMAIL if english else pools.LOCAL_GREETINGS[language]
        parts.append(_fill(rng.choice(pool(greetings)), fill))
    parts.append(body)
    if rng.random() < 0.8:
        signatures = pools.SIGNATURES if english else pools.LOCAL_SIGNATURES[language]
        parts.append(_fill(rng.choice(pool(signatures)), fill))
    quoted = None
    if rng.random() < 0.25:
        replies = pools.QUOTED_REPLIES if english else pools.LOCAL_QUOTED_REPLIES[language]
        quoted = _fill(rng.choice(pool(replies)), fill)
    if rng.random() < HTML_SHARE:
        text = _as_html(parts, quoted, rng)
    else:
        text = "\n\n".join([*parts, *([quoted] if quoted else [])])
    if not subject or rng.random() < 0.15:
        subject = rng.choice(
            ["", "(no subject)", f"Order {fill['order']}", "Question", "Help", "Re: your order"]
        )
    elif rng.random() < 0.2:
        subject = "Re: " + subject
    return text, subject


def _as_html(parts: list[str], quoted: str | None, rng: random.Random) -> str:
    """The email as a mail client's HTML: one block per paragraph, the quoted reply in the client's container."""
    blocks = "".join(f"<div>{html.escape(p).replace(chr(10), '<br>')}</div><div><br></div>" for p in parts)
    if quoted:
        head, _, rest = quoted.partition("\n")
        rest_html = html.escape(rest.replace("> ", "")).replace("\n", "<br>")
        style = rng.randrange(3)
        if style == 0:
            blocks += (
                f'<div class="gmail_quote"><div class="gmail_attr">{html.escape(head)}</div>'
                f'<blockquote class="gmail_quote">{rest_html}</blockquote></div>'
            )
        elif style == 1:
            blocks += f'<blockquote type="cite"><div>{html.escape(head)}</div>{rest_html}</blockquote>'
        else:
            blocks += f'<hr><div id="divRplyFwdMsg">{html.escape(head)}<br>{rest_html}</div>'
    return f'<html><body><div dir="ltr">{blocks}</div></body></html>'


def _chat(body: str, rng: random.Random, pool: Any, language: str) -> tuple[str, str]:
    text = body
    if rng.random() < 0.5:
        text = text.lower()
    if rng.random() < 0.5:
        text = re.sub(r"\s*\n\s*", "\n" if rng.random() < 0.5 else " ", text)
    greeting = rng.choice(pool(pools.GREETINGS_CHAT))
    if language != "en":
        greeting = rng.choice(["", rng.choice(pools.LOCAL_GREETINGS[language]).rstrip(",:").lower()])
    opener = rng.choice(pools.CHAT_OPENERS)
    if greeting:
        text = f"{greeting}\n{text}" if rng.random() < 0.5 else f"{greeting} {text}"
    return opener + text, ""


def _form(body: str, subject: str, fill: dict[str, str], rng: random.Random, pool: Any) -> tuple[str, str]:
    template = rng.choice(pool(pools.CONTACT_FORMS))
    text = _fill(template, {**fill, "body": body})
    subject = (
        subject
        if subject and rng.random() < 0.3
        else rng.choice(
            [f"Contact form: {fill['topic']}", "New message from your store", "Website enquiry", ""]
        )
    )
    return text, subject


_ORDER_LIKELY = {
    "product_question": 0.25,
    "account": 0.4,
    "other": 0.4,
    "complaint_feedback": 0.7,
}
_FULFILLMENT = {
    "order_status": (["unfulfilled", "fulfilled", "partial"], [5, 4, 1]),
    "shipping_delivery": (["unfulfilled", "fulfilled"], [4, 5]),
    "cancel_order": (["unfulfilled", "fulfilled"], [8, 2]),
    "order_change": (["unfulfilled", "fulfilled"], [8, 2]),
    "refund_return": (["fulfilled", "restocked", "partial"], [8, 1, 1]),
}
_FINANCIAL = {
    "refund_return": (["paid", "refunded", "partially_refunded"], [7, 2, 1]),
    "payment_billing": (["paid", "pending", "voided", "authorized"], [6, 2, 1, 1]),
    "cancel_order": (["paid", "authorized"], [8, 2]),
}


def _metadata(item: SeedItem, channel: str, rng: random.Random) -> dict[str, Any]:
    has_order = rng.random() < _ORDER_LIKELY.get(item.category, 0.9)
    order_count = max(0, int(rng.lognormvariate(1.0, 0.9)) - (0 if has_order else 1))
    if has_order:
        order_count = max(order_count, 1)
    vip = rng.random() < 0.08
    ltv = round(order_count * rng.uniform(30, 140) * (4 if vip else 1), 2)
    prior = rng.choices([0, 1, 2, 3, 4, 5], weights=[70, 14, 7, 4, 3, 2])[0]
    meta: dict[str, Any] = {
        "channel": channel,
        "customer_vip": vip if rng.random() < 0.9 else None,
        "customer_lifetime_value": ltv if rng.random() < 0.9 else None,
        "customer_order_count": order_count,
        "order_total": None,
        "order_financial_status": None,
        "order_fulfillment_status": None,
        "prior_contacts": prior,
    }
    if has_order:
        meta["order_total"] = round(min(math.exp(rng.gauss(4.1, 0.8)), 2500.0), 2)
        labels, weights = _FINANCIAL.get(item.category, (["paid"], [1]))
        meta["order_financial_status"] = rng.choices(labels, weights=weights)[0]
        labels, weights = _FULFILLMENT.get(item.category, (["fulfilled", "unfulfilled"], [6, 4]))
        meta["order_fulfillment_status"] = rng.choices(labels, weights=weights)[0]
    return meta


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def compose_files(train_path: Path = TRAIN_FILE, holdout_path: Path = HOLDOUT_FILE) -> tuple[int, int]:
    """Re-render the committed seed JSONL files from the hand-written items."""
    train, holdout = compose(load_items())
    write_jsonl(train, train_path)
    write_jsonl(holdout, holdout_path)
    return len(train), len(holdout)
