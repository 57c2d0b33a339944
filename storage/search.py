"""Ticket text search, per back-end: the user's words → a condition on ``tickets`` that the text index
answers (migration ``0008_ticket_search``).

Both back-ends see the same words: the searched text (subject, body, customer email and name, order id,
tags) and the query are split on anything that is not a letter or a digit, so ``alice@example.com`` is the
phrase ``alice example com`` and ``#A-1001`` is ``a 1001``. Every word the user typed must be found (AND);
a word with punctuation inside must be found as that phrase. Tokens match whole (``refund`` does not find
``refunded``), except the last token of the last word while it is being typed — the search does not end
with a space and the token has at least :data:`MIN_PREFIX` characters —, which matches as a prefix
(``refun`` finds ``refund``; ``refun `` does not). PostgreSQL estimates a prefix query (``1001:*``) as
matching many rows; asked for a page in one query it prefers walking the newest tickets and computing
each one's document over the GIN index (2.5 s instead of 4 ms for an order number at 100k tickets), which
is why a searched page reads its matches first (``workflow.tickets.read._searched_page``). SQLite asks FTS5 (``tickets_fts``);
PostgreSQL matches the GIN-indexed ``tsvector`` expression :data:`PG_DOCUMENT` (the query must repeat it
exactly for the index to be used).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

MAX_SEARCH_WORDS = 12
MIN_PREFIX = 2  # a one-letter prefix would read most of the index
PREFIX = "*"  # marks the last token as a prefix (tokens are letters and digits, never this)
_TOKEN = re.compile(r"[^\W_]+")

PG_DOCUMENT = (
    "to_tsvector('simple'::regconfig, regexp_replace("
    "coalesce(subject, '') || ' ' || coalesce(body, '') || ' ' || coalesce(customer_email, '') || ' ' || "
    "coalesce(customer_name, '') || ' ' || coalesce(order_id, '') || ' ' || coalesce(tags::text, ''), "
    "'[^[:alnum:]]+', ' ', 'g'))"
)


def search_words(query: str) -> list[list[str]]:
    """The words of a search, each as its tokens (lower-case letters and digits); empty words dropped. The
    last token ends with :data:`PREFIX` when it is to match as a prefix (see the module docstring)."""
    words = [tokens for tokens in (_TOKEN.findall(word.lower()) for word in query.split()) if tokens]
    typing = bool(query) and _TOKEN.match(query[-1]) is not None  # it ends inside a token
    if typing and len(words) <= MAX_SEARCH_WORDS and len(words[-1][-1]) >= MIN_PREFIX:
        words[-1] = [*words[-1][:-1], words[-1][-1] + PREFIX]
    return words[:MAX_SEARCH_WORDS]


def _prefix(token: str) -> tuple[str, bool]:
    return (token[: -len(PREFIX)], True) if token.endswith(PREFIX) else (token, False)


def fts5_query(words: list[list[str]]) -> str:
    # Tokens are letters and digits only, so quoting needs no escaping; `"a b c"` is a phrase, and
    # `"a b"*` a phrase whose last token is a prefix.
    def phrase(tokens: list[str]) -> str:
        last, prefix = _prefix(tokens[-1])
        return '"' + " ".join([*tokens[:-1], last]) + '"' + ("*" if prefix else "")

    return " AND ".join(phrase(tokens) for tokens in words)


def tsquery(words: list[list[str]]) -> str:
    def phrase(tokens: list[str]) -> str:
        last, prefix = _prefix(tokens[-1])
        return "(" + " <-> ".join([*tokens[:-1], last + (":*" if prefix else "")]) + ")"

    return " & ".join(phrase(tokens) for tokens in words)


def search_condition(dialect: str, words: list[list[str]]) -> Any:
    """A WHERE condition on ``tickets`` for ``words`` (non-empty) on the given dialect."""
    if dialect == "postgresql":
        return text(f"{PG_DOCUMENT} @@ to_tsquery('simple'::regconfig, :search_tsquery)").bindparams(
            search_tsquery=tsquery(words)
        )
    return text(
        "tickets.rowid IN (SELECT rowid FROM tickets_fts WHERE tickets_fts MATCH :search_fts)"
    ).bindparams(search_fts=fts5_query(words))
