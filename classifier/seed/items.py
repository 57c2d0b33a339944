"""Parse the hand-written seed items (`items/<category>.txt`).

Format: an item starts with a header line ``=== <priority> [channel]`` (channel: email, chat, contact_form or
any), an optional ``Subject: ...`` line, then the message body up to the next header. Lines starting with ``#``
before the first header are comments. Placeholders in braces (``{name}``, ``{order}``, ``{product}``...) are filled
by the composer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from classifier.types import DEFAULT_CATEGORIES, DEFAULT_PRIORITIES, ClassifierError

ITEMS_DIR = Path(__file__).parent / "items"
CHANNELS = ("email", "chat", "contact_form", "any")


@dataclass(frozen=True)
class SeedItem:
    item_id: str  # "<category>/<index>", stable while items are only appended
    category: str
    priority: str
    channel: str
    subject: str
    body: str


def parse_items(text: str, category: str) -> list[SeedItem]:
    items: list[SeedItem] = []
    header: list[str] | None = None
    lines: list[str] = []

    def flush() -> None:
        if header is None:
            return
        priority = header[0]
        channel = header[1] if len(header) > 1 else "any"
        if priority not in DEFAULT_PRIORITIES or channel not in CHANNELS:
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
        items.append(SeedItem(f"{category}/{len(items):03d}", category, priority, channel, subject, body))

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
