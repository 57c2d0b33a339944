"""The language of a ticket (the rules' `ticket.language` fact): lingua's detector, whose models ship in its wheel.

Chosen over langdetect (2.4 ms a message, ~65 MB), py3langid (0.08 ms but ~80 MB resident for its 97 languages)
and fastText-based detectors (their models are downloaded at run time). lingua runs here in its low-accuracy
mode (character trigrams only) restricted to `LANGUAGES`: a fraction of a millisecond a message, tens of MB of
models in the process at most (lingua keeps them once per process, loaded on first need), and on the fresh
hold-out's cleaned messages (bench/data/fresh_holdout.txt) every language right but one short English chat line.

The answer is an ISO 639-1 code, or None (the fact is then missing) when the text is too short to tell or the
detector is not sure — a rule on `ticket.language` never fires on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

from classifier.types import ClassifierError

# The seed set's languages plus three more a European store meets often. Each added language costs time and
# short-text accuracy (on the fresh hold-out: 7 languages 164 of 165 right, 18 languages 162, at several times the
# time). lingua's confidences are relative to the listed languages, so a language outside the list is answered
# as the nearest one in it (Finnish against English and German comes out "en"): list what the store receives.
LANGUAGES: tuple[str, ...] = ("en", "es", "de", "fr", "it", "nl", "pt", "pl", "sv", "da")  # BOOKBAG_LANGUAGES
# Fewer letters than this say too little about a language (greetings and order numbers).
MIN_LETTERS = 12
# lingua's confidence of the top language; below it the answer is None.
MIN_CONFIDENCE = 0.5
_LETTERS = re.compile(r"[^\W\d_]", re.UNICODE)


class LanguageDetector:
    """Thread-safe; build once (cheap: models load on first use) and share."""

    def __init__(
        self, languages: Sequence[str] = LANGUAGES, *, min_confidence: float = MIN_CONFIDENCE
    ) -> None:
        try:
            chosen = [Language.from_iso_code_639_1(IsoCode639_1.from_str(code)) for code in languages]
        except ValueError as exc:
            raise ClassifierError(f"unknown language code in {list(languages)}: {exc}") from exc
        if len(chosen) < 2:
            raise ClassifierError("a language detector needs at least two languages")
        self.languages = tuple(languages)
        self.min_confidence = min_confidence
        self._detector = LanguageDetectorBuilder.from_languages(*chosen).with_low_accuracy_mode().build()

    def detect(self, text: str) -> str | None:
        """ISO 639-1 code of the text's language, or None when it is too short or the detector is unsure."""
        if len(_LETTERS.findall(text[:2000])) < MIN_LETTERS:
            return None
        values = self._detector.compute_language_confidence_values(text[:2000])
        if not values or values[0].value < self.min_confidence:
            return None
        return str(values[0].language.iso_code_639_1.name.lower())
