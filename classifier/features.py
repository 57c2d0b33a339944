"""Feature extraction shared by training and serving: text normalisation, TF-IDF text features, metadata features.

The text features are word and character n-gram TF-IDF restricted to a selected vocabulary. They are stored as
plain JSON (vocabulary + idf weights), never pickled, so a model directory is safe to load and diffable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.feature_selection import chi2

from classifier.lexicon import with_concepts
from classifier.types import ClassifierError, TicketInput

FEATURES_FORMAT = "bookbag-text-features/1"

_URL = re.compile(r"https?://\S+|www\.\S+", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_MONEY = re.compile(
    r"(?:[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*(?:\.\d+)?\s?(?:usd|eur|gbp|dollars|euros|bucks)\b)", re.I
)
_ORDER_REF = re.compile(r"(?:#\s?[a-z]{0,4}-?\d{3,}|\b[a-z]{1,4}-\d{3,}\b|\b\d{4,}\b)", re.I)
_DIGITS = re.compile(r"\d+")
_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
_SPACES = re.compile(r"\s+")

WORD_TOKEN_PATTERN = r"(?u)\b\w+\b"
# Distinct words whose char n-gram columns are remembered; real inboxes repeat a small vocabulary, so this covers
# almost every word seen in serving while bounding memory.
CHAR_CACHE_WORDS = 1 << 16


def normalize_text(text: str, *, concepts: bool = True) -> str:
    """Lower-case, replace identifiers (orders, money, links) with stable tokens, and mark the words of the
    cross-language lexicon with their concept (`classifier.lexicon`).

    Identifiers carry no label information and would otherwise be memorised. The text is expected to be cleaned
    already (`classifier.cleaning`: no HTML, quoted history or signature), as `TicketInput.clean_text` is.
    """
    text = text.lower()
    text = _PLACEHOLDER.sub(" xref ", text)
    text = _URL.sub(" xurl ", text)
    text = _EMAIL.sub(" xemail ", text)
    text = _MONEY.sub(" xmoney ", text)
    text = _ORDER_REF.sub(" xref ", text)
    text = _DIGITS.sub("0", text)
    text = _SPACES.sub(" ", text).strip()
    return with_concepts(text) if concepts else text


def _word_vectorizer(vocabulary: dict[str, int] | None, min_df: int) -> CountVectorizer:
    return CountVectorizer(
        token_pattern=WORD_TOKEN_PATTERN,
        ngram_range=(1, 2),
        min_df=min_df,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


DEFAULT_CHAR_NGRAMS = (3, 5)


def _char_vectorizer(
    vocabulary: dict[str, int] | None, min_df: int, ngram_range: tuple[int, int] = DEFAULT_CHAR_NGRAMS
) -> CountVectorizer:
    return CountVectorizer(
        analyzer="char_wb", ngram_range=ngram_range, min_df=min_df, vocabulary=vocabulary, dtype=np.float32
    )


class _CharCounter:
    """``char_wb`` n-gram counts over a fixed vocabulary, identical to ``CountVectorizer.transform``'s.

    ``char_wb`` cuts n-grams inside each whitespace-separated word only, so a word's columns can be computed once
    and remembered; CountVectorizer instead rebuilds every n-gram string of every text, which made up half of a
    batch prediction's time. The memo is an ``lru_cache`` (thread-safe), so transform stays safe to share.
    """

    def __init__(self, vocab: Sequence[str], ngram_range: tuple[int, int] = DEFAULT_CHAR_NGRAMS) -> None:
        self.n_columns = len(vocab)
        index = {t: i for i, t in enumerate(vocab)}
        analyze = _char_vectorizer(None, 1, ngram_range).build_analyzer()

        def columns(word: str) -> tuple[int, ...]:
            return tuple(index[g] for g in analyze(word) if g in index)

        self._columns: Callable[[str], tuple[int, ...]] = lru_cache(maxsize=CHAR_CACHE_WORDS)(columns)

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        columns = self._columns
        indptr = np.zeros(len(texts) + 1, dtype=np.int64)
        found: list[int] = []
        for row, text in enumerate(texts):
            for word in text.split():
                found.extend(columns(word))
            indptr[row + 1] = len(found)
        indices = np.asarray(found, dtype=np.int32)
        ones = np.ones(len(indices), dtype=np.float32)
        counts = sp.csr_matrix((ones, indices, indptr), shape=(len(texts), self.n_columns))
        counts.sum_duplicates()  # sorts each row's columns and adds up repeats, as CountVectorizer's output
        return counts


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear tf times idf, then l2 per row: the classic TF-IDF, applied to a fixed vocabulary.

    Works on the CSR arrays directly: scipy's generic operations cost more than the arithmetic for one ticket.
    """
    matrix = counts.tocsr()
    n_rows = matrix.shape[0]
    per_row = np.diff(matrix.indptr)
    data = (1.0 + np.log(matrix.data.astype(np.float32))) * idf[matrix.indices]
    squares = np.bincount(np.repeat(np.arange(n_rows), per_row), weights=data * data, minlength=n_rows)
    norms = np.sqrt(squares).astype(np.float32)
    norms[norms == 0] = 1.0
    data = (data / np.repeat(norms, per_row)).astype(np.float32)
    return sp.csr_matrix((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def join_columns(parts: Sequence[sp.csr_matrix | np.ndarray]) -> sp.csr_matrix:
    """CSR and dense blocks side by side as one CSR matrix, built in a single pass.

    Equivalent to ``scipy.sparse.hstack`` (dense blocks are stored in full, zeros included), at a fraction of
    its per-call overhead, which dominates single-ticket prediction.
    """
    n_rows = parts[0].shape[0]
    counts = [
        np.diff(p.indptr) if isinstance(p, sp.csr_matrix) else np.full(n_rows, p.shape[1]) for p in parts
    ]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.sum(counts, axis=0), out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=np.float32)
    start = indptr[:-1].copy()
    offset = 0
    for part, count in zip(parts, counts, strict=True):
        if isinstance(part, sp.csr_matrix):
            csr = part
            within = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], count)
            positions = start[np.repeat(np.arange(n_rows), count)] + within
            indices[positions] = csr.indices + offset
            data[positions] = csr.data
        else:
            positions = start[:, None] + np.arange(part.shape[1])
            indices[positions] = offset + np.arange(part.shape[1])
            data[positions] = part
        start += count
        offset += part.shape[1]
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, offset))


def _idf(counts: sp.csr_matrix) -> np.ndarray:
    n_docs = counts.shape[0]
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    idf: np.ndarray = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float32)
    return idf


@dataclass
class TextFeaturizer:
    """TF-IDF over a fixed word and character n-gram vocabulary; transform is read-only after warm-up."""

    word_vocab: list[str]
    word_idf: np.ndarray
    char_vocab: list[str]
    char_idf: np.ndarray
    # The columns the boosters see directly (the stacked linear scorers see all of them): trees need only the
    # strongest n-grams, and every extra column costs training time.
    tree_columns: np.ndarray | None = None
    # Character n-gram lengths (within word boundaries); short ones keep misspelt words close to the right ones.
    char_ngram_range: tuple[int, int] = DEFAULT_CHAR_NGRAMS
    # Whether words of the cross-language lexicon are followed by their concept token (classifier.lexicon); off
    # for feature files written before it existed, so their models keep reading what they were trained on.
    concepts: bool = True

    def __post_init__(self) -> None:
        if self.tree_columns is None:
            self.tree_columns = np.arange(self.n_features)
        self.tree_columns = np.asarray(self.tree_columns, dtype=np.int64)
        if len(self.tree_columns) and (
            self.tree_columns.min() < 0 or self.tree_columns.max() >= self.n_features
        ):
            raise ClassifierError("tree feature columns out of range")
        self._word = _word_vectorizer({t: i for i, t in enumerate(self.word_vocab)}, 1)
        self.char_ngram_range = (int(self.char_ngram_range[0]), int(self.char_ngram_range[1]))
        if not 1 <= self.char_ngram_range[0] <= self.char_ngram_range[1]:
            raise ClassifierError(f"bad character n-gram range {self.char_ngram_range}")
        self._char = _CharCounter(self.char_vocab, self.char_ngram_range)
        # CountVectorizer validates a fixed vocabulary lazily on first use; doing it now keeps transform read-only
        # and therefore safe to call from several threads.
        self.transform_normalized(["warm up"])

    @property
    def n_features(self) -> int:
        return len(self.word_vocab) + len(self.char_vocab)

    @property
    def n_tree_features(self) -> int:
        return len(self.tree_columns) if self.tree_columns is not None else self.n_features

    def tree_part(self, text: sp.csr_matrix) -> sp.csr_matrix:
        if self.tree_columns is None or len(self.tree_columns) == self.n_features:
            return text  # columns are sorted and unique, so "as many as all" means all
        return text[:, self.tree_columns]

    def transform_normalized(self, texts: Sequence[str]) -> sp.csr_matrix:
        words = _tfidf(self._word.transform(texts), self.word_idf)
        chars = _tfidf(self._char.transform(texts), self.char_idf)
        return join_columns([words, chars])

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.transform_normalized([normalize_text(t, concepts=self.concepts) for t in texts])

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[Sequence[str]],
        *,
        max_word_features: int,
        max_char_features: int,
        max_tree_features: int,
        min_df: int = 2,
        char_ngram_range: tuple[int, int] = DEFAULT_CHAR_NGRAMS,
    ) -> TextFeaturizer:
        """Fit the full vocabularies, then keep the n-grams most associated (chi²) with any of the label sets."""
        normalized = [normalize_text(t) for t in texts]
        word = _word_vectorizer(None, min_df)
        char = _char_vectorizer(None, min_df, char_ngram_range)
        try:
            word_counts = word.fit_transform(normalized).tocsr()
            char_counts = char.fit_transform(normalized).tocsr()
        except ValueError as exc:  # every term below min_df: far too little text to learn from
            raise ClassifierError(f"not enough text to build a vocabulary: {exc}") from exc
        word_idf, char_idf = _idf(word_counts), _idf(char_counts)
        word_keep = _select(_tfidf(word_counts, word_idf), labels, max_word_features)
        char_keep = _select(_tfidf(char_counts, char_idf), labels, max_char_features)
        word_terms = word.get_feature_names_out()
        char_terms = char.get_feature_names_out()
        featurizer = cls(
            word_vocab=[str(t) for t in word_terms[word_keep]],
            word_idf=word_idf[word_keep],
            char_vocab=[str(t) for t in char_terms[char_keep]],
            char_idf=char_idf[char_keep],
            char_ngram_range=char_ngram_range,
        )
        featurizer.tree_columns = _select(
            featurizer.transform_normalized(normalized), labels, max_tree_features
        )
        return featurizer

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FEATURES_FORMAT,
            "word": {"ngram_range": [1, 2], "vocab": self.word_vocab, "idf": _floats(self.word_idf)},
            "char_wb": {
                "ngram_range": list(self.char_ngram_range),
                "vocab": self.char_vocab,
                "idf": _floats(self.char_idf),
            },
            "tree_columns": [int(i) for i in (self.tree_columns if self.tree_columns is not None else [])],
            "concepts": self.concepts,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TextFeaturizer:
        if data.get("format") != FEATURES_FORMAT:
            raise ClassifierError(f"unsupported text feature format {data.get('format')!r}")
        try:
            return cls(
                word_vocab=list(data["word"]["vocab"]),
                word_idf=np.asarray(data["word"]["idf"], dtype=np.float32),
                char_vocab=list(data["char_wb"]["vocab"]),
                char_idf=np.asarray(data["char_wb"]["idf"], dtype=np.float32),
                tree_columns=np.asarray(data["tree_columns"], dtype=np.int64),
                char_ngram_range=tuple(data["char_wb"].get("ngram_range", DEFAULT_CHAR_NGRAMS)),
                concepts=bool(data.get("concepts", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClassifierError(f"corrupt text feature file: {exc}") from exc

    def save(self, path: Path) -> None:
        path.write_text(
            json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
        )

    @classmethod
    def load(cls, path: Path) -> TextFeaturizer:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ClassifierError(f"cannot read text features {path}: {exc}") from exc
        return cls.from_json(data)


def _select(matrix: sp.csr_matrix, label_sets: Sequence[Sequence[str]], k: int) -> np.ndarray:
    """Indices (sorted) of the k columns with the best chi² rank for any of the label sets."""
    n_cols = matrix.shape[1]
    if n_cols <= k:
        return np.arange(n_cols)
    best_rank = np.full(n_cols, np.inf)
    for labels in label_sets:
        if len(set(labels)) < 2:
            continue
        scores, _ = chi2(matrix, np.asarray(labels))
        scores = np.nan_to_num(scores, nan=0.0)
        ranks = np.empty(n_cols)
        ranks[np.argsort(-scores, kind="stable")] = np.arange(n_cols)
        best_rank = np.minimum(best_rank, ranks)
    if not np.isfinite(best_rank).any():
        return np.arange(min(n_cols, k))
    return np.sort(np.argsort(best_rank, kind="stable")[:k])


def _floats(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]


CHANNELS: tuple[str, ...] = ("email", "chat", "contact_form", "phone", "social", "sms")
FINANCIAL_STATUSES: tuple[str, ...] = (
    "pending",
    "authorized",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "voided",
)
FULFILLMENT_STATUSES: tuple[str, ...] = ("unfulfilled", "partial", "fulfilled", "restocked")

META_FEATURE_NAMES: tuple[str, ...] = (
    *(f"channel={c}" for c in CHANNELS),
    "customer_vip",
    "log_lifetime_value",
    "customer_order_count",
    "log_order_total",
    *(f"financial={s}" for s in FINANCIAL_STATUSES),
    *(f"fulfillment={s}" for s in FULFILLMENT_STATUSES),
    "prior_contacts",
)
STYLE_FEATURE_NAMES: tuple[str, ...] = ("log_chars", "exclamations", "caps_ratio", "question_marks")


def _one_hot(value: str | None, choices: tuple[str, ...]) -> list[float]:
    if value is None:
        return [math.nan] * len(choices)
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    return [1.0 if key == c else 0.0 for c in choices]


def _opt(value: float | None, transform: bool = False) -> float:
    if value is None:
        return math.nan
    return math.log1p(max(value, 0.0)) if transform else float(value)


def metadata_features(tickets: Sequence[TicketInput]) -> np.ndarray:
    """Ticket metadata as a dense float matrix; NaN marks 'unknown', which LightGBM handles natively."""
    rows = []
    for t in tickets:
        vip = math.nan if t.customer_vip is None else float(t.customer_vip)
        rows.append(
            [
                *_one_hot(t.channel, CHANNELS),
                vip,
                _opt(t.customer_lifetime_value, transform=True),
                _opt(None if t.customer_order_count is None else float(t.customer_order_count)),
                _opt(t.order_total, transform=True),
                *_one_hot(t.order_financial_status, FINANCIAL_STATUSES),
                *_one_hot(t.order_fulfillment_status, FULFILLMENT_STATUSES),
                _opt(None if t.prior_contacts is None else float(t.prior_contacts)),
            ]
        )
    return np.asarray(rows, dtype=np.float32).reshape(len(tickets), len(META_FEATURE_NAMES))


def style_features(texts: Sequence[str]) -> np.ndarray:
    """Tone signals that TF-IDF loses: length, shouting, exclamation and question marks."""
    rows = []
    for text in texts:
        letters = sum(map(str.isalpha, text))
        caps = sum(map(str.isupper, text)) / letters if letters else 0.0
        rows.append([math.log1p(len(text)), float(text.count("!")), caps, float(text.count("?"))])
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), len(STYLE_FEATURE_NAMES))
