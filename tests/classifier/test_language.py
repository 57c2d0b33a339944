"""Language detection (classifier.language): the seed set's languages, short texts, bad settings, threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from classifier.language import LanguageDetector
from classifier.types import ClassifierError

SAMPLES = {
    "en": "Hello, my parcel was supposed to arrive on Monday and the tracking has not changed since.",
    "es": "Hola, el paquete tenía que llegar el lunes y el seguimiento no ha cambiado desde entonces.",
    "de": "Hallo, das Paket sollte am Montag ankommen und die Sendungsverfolgung hat sich seitdem nicht bewegt.",
    "fr": "Bonjour, le colis devait arriver lundi et le suivi n'a pas bougé depuis.",
    "it": "Buongiorno, il pacco doveva arrivare lunedì e il tracciamento è fermo da allora.",
    "nl": "Hallo, het pakket zou maandag komen en de track en trace is sindsdien niet veranderd.",
    "pt": "Olá, a encomenda devia ter chegado na segunda-feira e o rastreio não mudou desde então.",
}


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_detects_each_seed_language(detector: LanguageDetector, language: str) -> None:
    assert detector.detect(SAMPLES[language]) == language


@pytest.mark.parametrize("text", ["", "ok", "#44120 ??", "thx!!", "12345 67890 12345"])
def test_too_short_to_tell_is_none(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) is None


def test_bad_language_codes_are_refused() -> None:
    with pytest.raises(ClassifierError):
        LanguageDetector(["en", "xx"])
    with pytest.raises(ClassifierError):
        LanguageDetector(["en"])


def test_threads_share_one_detector(detector: LanguageDetector) -> None:
    texts = list(SAMPLES.items()) * 20
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda item: detector.detect(item[1]), texts))
    assert answers == [language for language, _ in texts]
