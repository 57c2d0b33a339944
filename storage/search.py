"""Ticket text search, per back-end: the user's words → a condition on ``tickets`` that the text index
answers (migration ``0008_ticket_search``).

Both back-ends see the same words: the searched text (subject, body, customer email and name, order id,
tags) and the query are split on anything that is not a letter or a digit, so ``alice@example.com`` is the
phrase ``alice example com`` and ``#A-1001`` is ``a 1001``. Every word the user typed must be found (AND);
a word with punctuation inside must be found as that phrase. Tokens match whole (``refund`` does not find
``refunded``): PostgreSQL estimates a prefix query (``1001:*``) as matching many rows and then prefers
walking the newest tickets and computing each one's document over the GIN index — 2.5 s instead of 4 ms
for an order number at 100k tickets (bench/search_report_bench.py). SQLite asks FTS5 (``tickets_fts``);
PostgreSQL matches the GIN-indexed ``tsvector`` expression :data:`PG_DOCUMENT` (the query must repeat it
exactly for the index to be used).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

MAX_SEARCH_WORDS = 12
_TOKEN = re.compile(r"[^\W_]+")

PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace("
    "coalesce(subject, '') || ' ' || coalesce(body, '') || ' ' || coalesce(customer_email, '') || ' ' || "
    "coalesce(customer_name, '') || ' ' || coalesce(order_id, '') || ' ' || coalesce(tags::text, ''), "
    "'[^[:alnum:]]+', ' ', 'g'))"
)


def search_words(query: str) -> list[list[str]]:
    """The words of a search, each as its tokens (lower-case letters and digits); empty words dropped."""
    words = [_TOKEN.findall(word.lower()) for word in query.split()]
    return [tokens for tokens in words if tokens][:MAX_SEARCH_WORDS]


def fts5_query(words: list[list[str]]) -> str:
    # Tokens are letters and digits only, so quoting needs no escaping; `"a b c"` is a phrase.
    return " AND ".join(f'"{" ".join(tokens)}"' for tokens in words)


def tsquery(words: list[list[str]]) -> str:
    return " & ".join("(" + " <-> ".join(tokens) + ")" for tokens in words)


def search_condition(dialect: str, words: list[list[str]]) -> Any:
    """A WHERE condition on ``tickets`` for ``words`` (non-empty) on the given dialect."""
    if dialect == "postgresql":
        return text(f"{PG_DOCUMENT} @@ to_tsquery('simple'::regconfig, :search_tsquery)").bindparams(
            search_tsquery=tsquery(words)
        )
    return text(
        "tickets.rowid IN (SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH :search_fts)"
    ).bindparams(search_fts=fts5_query(words))
