"""Parse the hand-written seed items (`items/<category>.txt`).

Format: an item starts with a header line ``=== <priority> [channel] [language]`` (channel: email, chat,
contact_form or any; language: an ISO 639-1 code of `LANGUAGES`, default en), an optional ``Subject: ...`` line, then the message body up to the next header. Lines starting with ``#``
before the first header are comments. Placeholders in braces (``{name}``, ``{order}``, ``{product}``...) are filled
by the composer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classifier.types import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES, ClassifierError

ITEMS_DIR = Path(__file__).parent / "items"
CHANNELS = ("email", "chat", "contact_form", "any")
# The languages the seed set (and the composer's fillers) are written in.
LANGUAGES = ("en", "es", "de", "fr", "it", "nl", "pt")


@dataclass(frozen=True)
class SeedItem:
    item_id: str  # "<category>/<index>", stable while items are only appended
    category: str
    priority: str
    channel: str
    subject: str
    body: str
    language: str = "en"


def parse_items(text: str, category: str) -> list[SeedItem]:
    items: list[SeedItem] = []
    header: list[str] | None = None
    lines: list[str] = []

    def flush() -> None:
        if header is None:
            return
        priority = header[0]
        channel = header[1] if len(header) > 1 else "any"
        language = header[2] if len(header) > 2 else "en"
        if (
            priority not in DEFAULT_PRIORITIES
            or channel not in CHANNELS
            or language not in LANGUAGES
            or len(header) > 3
        ):
            raise ClassifierError(f"{category}: bad item header {' '.join(header)!r}")
        body_lines = list(lines)
        subject = ""
        while body_lines and not body_lines[0].strip():
            body_lines.pop(0)
        if body_lines and body_lines[0].startswith("Subject:"):
            subject = body_lines.pop(0)[len("Subject:") :].strip()
        body = "\n".join(body_lines).strip()
        if not body:
            raise ClassifierError(f"{category}: empty item after header {' '.join(header)!r}")
        item_id = f"{category}/{len(items):03d}"
        items.append(SeedItem(item_id, category, priority, channel, subject, body, language))

    for line in text.splitlines():
        if line.startswith("==="):
            flush()
            header = line[3:].split()
            lines = []
        elif header is not None:
            lines.append(line)
    flush()
    return items


def load_items(items_dir: Path = ITEMS_DIR) -> list[SeedItem]:
    items: list[SeedItem] = []
    for category in DEFAULT_CATEGORIES:
        path = items_dir / f"{category}.txt"
        if not path.is_file():
            raise ClassifierError(f"missing seed items file {path}")
        items += parse_items(path.read_text(encoding="utf-8"), category)
    return items


@dataclass(frozen=True)
class HeldOutMessage:
    """One message of a hand-written evaluation file (`bench/data/fresh_holdout.txt`): the label, the language
    and whether the body is HTML, with the message exactly as it would arrive."""

    category: str
    priority: str
    language: str
    channel: str
    html: bool
    subject: str
    body: str


def parse_messages(text: str) -> list[HeldOutMessage]:
    """Messages headed ``=== <category> <priority> <language> <channel> [html]``, then ``Subject:`` and body."""
    out: list[HeldOutMessage] = []
    for number, block in enumerate(text.split("\n===")[1:], start=1):
        head, _, rest = block.partition("\n")
        fields = head.split()
        if len(fields) not in (4, 5) or (len(fields) == 5 and fields[4] != "html"):
            raise ClassifierError(f"message {number}: bad header {head!r}")
        category, priority, language, channel = fields[:4]
        if (
            category not in DEFAULT_CATEGORIES
            or priority not in DEFAULT_PRIORITIES
            or language not in LANGUAGES
            or channel not in CHANNELS
        ):
            raise ClassifierError(f"message {number}: bad header {head!r}")
        lines = rest.rstrip("\n").split("\n")
        subject = ""
        if lines and lines[0].startswith("Subject:"):
            subject = lines.pop(0)[len("Subject:") :].strip()
        body = "\n".join(lines).strip()
        if not body:
            raise ClassifierError(f"message {number}: empty body")
        out.append(HeldOutMessage(category, priority, language, channel, len(fields) == 5, subject, body))
    return out
