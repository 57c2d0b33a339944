"""Email cleaning shared by training and serving: the customer's new words, without HTML, history or sign-off.

`clean_body(body)` turns a ticket body as it arrives (plain text or HTML) into the text the model and the rules'
`ticket.body` fact see; the ticket itself keeps its raw body. Steps, in order:

1. HTML to text (the standard library's parser): block elements become line breaks, `<script>`/`<style>`/`<head>`
   are dropped, and the quoted-history containers mail clients mark up (Gmail's `gmail_quote`, Apple Mail's
   `<blockquote type="cite">`, Outlook's `divRplyFwdMsg`/`appendonsend`, Thunderbird's `moz-cite-prefix`, Yahoo's
   `yahoo_quoted`, any `<blockquote>`) end the new message.
2. Quoted history in text: the reply header line of Gmail/Apple Mail ("On … wrote:") in English, German, French,
   Spanish, Italian, Dutch and Portuguese, an Outlook header block (From/Sent, Von/Gesendet, De/Envoyé,
   De/Enviado, Da/Inviato, Van/Verzonden, De/Enviada em…), "-----Original Message-----" lines and their
   translations, a line of underscores; then every line quoted with `>`.
3. Forwarded messages ("---------- Forwarded message ---------", "Begin forwarded message:" and translations):
   the header lines are dropped; the forwarded text is kept only when the customer wrote (almost) nothing above
   it, since a forwarded confirmation otherwise drowns the customer's own request.
4. Signatures and disclaimers: from a "-- " delimiter or a device line ("Sent from my iPhone", "Von meinem
   iPhone gesendet", …); a closing ("Kind regards,", "Mit freundlichen Grüßen", "Cordialement", …) followed by
   nothing but a few short lines; paragraphs that read as a confidentiality notice.

Everything is line-based with precompiled patterns (tens of microseconds a message). When cleaning would leave
nothing (a message that is all quote), the text before step 2 is used, so a ticket never loses its only words.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_HTML_HINT = re.compile(r"<(?:html|body|div|p|br|table|span|blockquote|font)\b[^>]*>", re.I)
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})
_QUOTE_CLASSES = frozenset({"gmail_quote", "moz-cite-prefix", "yahoo_quoted", "protonmail_quote"})
_QUOTE_IDS = frozenset({"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"})
# Marks where an HTML quote container started; cut at like a text quote header.
_CUT = "\u2063quoted\u2063"


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._cut = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
            return
        if not self._cut and _is_quote(tag, attrs):
            self._cut = True
            self.parts.append(f"\n{_CUT}\n")
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(self._skip - 1, 0)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _is_quote(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    if tag == "blockquote":
        return True
    for name, value in attrs:
        if not value:
            continue
        if name == "class" and _QUOTE_CLASSES.intersection(value.split()):
            return True
        if name == "id" and value.lower() in _QUOTE_IDS:
            return True
    return False


def looks_like_html(text: str) -> bool:
    return _HTML_HINT.search(text) is not None


def html_to_text(html: str) -> str:
    """Visible text of an HTML email, one line per block; a quote container becomes a cut marker line."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # malformed markup the parser gives up on: keep what it read
        pass
    text = "".join(parser.parts).replace("\xa0", " ")
    lines = [line.strip() for line in text.splitlines()]
    return _squeeze_blank_lines(lines)


def _squeeze_blank_lines(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# A reply attribution ("On <date>, <name> <address> wrote:") in the seven languages of the seed set; Gmail wraps
# long ones, so the pattern is matched against a line joined with the next one.
_ATTRIBUTION = re.compile(
    r"""^\s*(?:
        on\s.{4,200}\bwrote\s?:
      | am\s.{4,200}\bschrieb\b.{0,200}:
      | le\s.{4,200}\ba\s+écrit\s?:
      | el\s.{4,200}\bescribió\s?:
      | il\s(?:giorno\s)?.{4,200}\bha\s+scritto\s?:
      | op\s.{4,200}\bschreef\b.{0,200}:
      | em\s.{4,200}\bescreveu\s?:
      | .{0,200}<[^>\s]+@[^>\s]+>\s+(?:wrote|schrieb|a\s+écrit|escribió|ha\s+scritto|schreef|escreveu)\s?:
    )\s*$""",
    re.I | re.X,
)
_HEADER_FROM = re.compile(r"^\s*\**\s*(?:from|von|de|da|van|fra|från|od)\s?:\**\s*\S", re.I)
_HEADER_NEXT = re.compile(
    r"^\s*\**\s*(?:sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé|à|objet|enviado|enviada\s+em|"
    r"fecha|para|asunto|assunto|data|inviato|oggetto|verzonden|aan|onderwerp|verstuurd)\s?:",
    re.I,
)
_SEPARATOR = re.compile(
    r"^\s*(?:-{3,}\s*(?:original\s+message|ursprüngliche\s+nachricht|message\s+d'origine|mensaje\s+original|"
    r"messaggio\s+originale|oorspronkelijk\s+bericht|mensagem\s+original)\s*-{3,}|_{10,})\s*$",
    re.I,
)
_FORWARD = re.compile(
    r"^\s*(?:-{3,}\s*(?:forwarded\s+message|weitergeleitete\s+nachricht|message\s+transféré|mensaje\s+reenviado|"
    r"messaggio\s+inoltrato|doorgestuurd\s+bericht|mensagem\s+encaminhada)\s*-{3,}|"
    r"begin\s+forwarded\s+message\s?:|anfang\s+der\s+weitergeleiteten\s+nachricht\s?:|"
    r"début\s+du\s+message\s+réexpédié\s?:|inizio\s+messaggio\s+inoltrato\s?:|"
    r"begin\s+doorgestuurd\s+bericht\s?:|início\s+da\s+mensagem\s+reencaminhada\s?:)\s*$",
    re.I,
)
_DEVICE = re.compile(
    r"^\s*(?:sent\s+from\s+(?:my\s+)?\S|get\s+outlook\s+for|sent\s+with\s+proton|von\s+meinem\s+\S+\s+gesendet|"
    r"gesendet\s+von\s+meinem|envoyé\s+de\s+mon|enviado\s+desde\s+mi|enviado\s+do\s+meu|inviato\s+da|"
    r"verstuurd\s+vanaf\s+mijn|verzonden\s+vanaf\s+mijn|enviado\s+a\s+partir\s+do)",
    re.I,
)
_SIG_DELIMITER = re.compile(r"^--\s?$")
_CLOSING = re.compile(
    r"""^\s*(?:
        (?:kind|best|warm|many|warmest)?\s*(?:regards|wishes|thanks|thank\s+you)(?:\s+(?:so\s+much|again|in\s+advance))?
      | best | cheers | sincerely | yours(?:\s+sincerely|\s+faithfully)? | all\s+the\s+best | ta | thx | ty
      | (?:mit\s+)?(?:freundliche|beste|viele|liebe|herzliche|schöne)n?\s+grüßen? | grüße | gruß | lg | vg
      | danke(?:\s+und\s+gruß)?
      | cordialement | bien\s+(?:à\s+vous|cordialement) | merci(?:\s+d'avance|\s+beaucoup)? | bonne\s+journée
      | (?:un\s+)?saludos?(?:\s+cordiales)? | atentamente | gracias | un\s+abrazo
      | cordiali\s+saluti | (?:distinti\s+)?saluti | grazie(?:\s+mille)? | a\s+presto
      | met\s+vriendelijke\s+groet(?:en)? | (?:hartelijke\s+)?groet(?:en|jes)? | bedankt | dank\s+je(?:\s+wel)?
      | cumprimentos | atenciosamente | obrigad[oa] | abraços? | beijinhos
    )\s*[,.!]*\s*$""",
    re.I | re.X,
)
_NOTICE_SECRET = re.compile(
    r"confidential|privileged|vertraulich|confidentiel|riservat|vertrouwelijk|confidencial|disclaimer", re.I
)
_NOTICE_ADDRESSEE = re.compile(
    r"recipient|addressee|intended|destinataire|empfänger|adressat|destinatari|geadresseerde|bestemd|"
    r"disclaimer|if\s+you\s+have\s+received",
    re.I,
)
_QUOTED_LINE = re.compile(r"^\s*>")
# A forward is kept when the customer's own words above it are shorter than this (e.g. "FYI" or nothing).
FORWARD_KEEP_BELOW = 40
# A closing line cuts the message only when at most this many short lines follow it (a name, a phone number).
_MAX_SIGNATURE_LINES = 6
_MAX_SIGNATURE_LINE = 60
# ... and only after this much text (a "Thanks" right after the greeting is not a sign-off).
_MIN_TEXT_BEFORE_CLOSING = 30


def clean_body(body: str) -> str:
    """The customer's new text of a ticket body (plain or HTML): see the module docstring."""
    if not body:
        return ""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if looks_like_html(text):
        text = html_to_text(text)
    lines = text.split("\n")
    cleaned = _strip_signature(_without_history(lines))
    if cleaned.strip():
        return _squeeze_blank_lines([line.rstrip() for line in cleaned.split("\n")])
    fallback = [line for line in lines if line != _CUT]
    return _squeeze_blank_lines([line.rstrip() for line in fallback])


def _without_history(lines: list[str]) -> list[str]:
    """Lines up to the first quote header (kept forwards appended), minus `>` lines."""
    for i, line in enumerate(lines):
        if line == _CUT or _SEPARATOR.match(line):
            return _unquoted(lines[:i])
        if _FORWARD.match(line):
            head = _unquoted(lines[:i])
            own = "".join("".join(head).split())
            if len(own) >= FORWARD_KEEP_BELOW:
                return head
            return head + _forwarded_body(lines[i + 1 :])
        if _is_attribution(lines, i) or _is_header_block(lines, i):
            return _unquoted(lines[:i])
    return _unquoted(lines)


def _is_attribution(lines: list[str], i: int) -> bool:
    line = lines[i]
    if len(line) > 400 or not line.strip():
        return False
    if _ATTRIBUTION.match(line):
        return True
    if i + 1 < len(lines) and not line.rstrip().endswith((".", "?", "!")):
        return _ATTRIBUTION.match(f"{line} {lines[i + 1]}") is not None
    return False


def _is_header_block(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [line for line in lines[i + 1 : i + 6] if line.strip()][:3]
    return any(_HEADER_NEXT.match(line) for line in following)


def _forwarded_body(lines: list[str]) -> list[str]:
    """A forwarded message without its header lines (From/Date/Subject/To and their translations)."""
    i = 0
    while i < len(lines) and (
        not lines[i].strip() or _HEADER_FROM.match(lines[i]) or _HEADER_NEXT.match(lines[i])
    ):
        i += 1
    return _without_history(lines[i:])


def _unquoted(lines: list[str]) -> list[str]:
    return [line for line in lines if not _QUOTED_LINE.match(line) and line != _CUT]


def _strip_signature(lines: list[str]) -> str:
    end = len(lines)
    for i, line in enumerate(lines):
        if i and (_SIG_DELIMITER.match(line) or _DEVICE.match(line)):
            end = i
            break
    lines = lines[:end]
    paragraphs = "\n".join(lines).split("\n\n")
    kept = [p for p in paragraphs if not _reads_as_notice(p)]
    lines = "\n\n".join(kept).split("\n")
    for i, line in enumerate(lines):
        if _CLOSING.match(line) and len("".join("".join(lines[:i]).split())) >= _MIN_TEXT_BEFORE_CLOSING:
            tail = [t for t in lines[i + 1 :] if t.strip()]
            if len(tail) <= _MAX_SIGNATURE_LINES and all(len(t) <= _MAX_SIGNATURE_LINE for t in tail):
                lines = lines[:i]
                break
    return "\n".join(lines)


def _reads_as_notice(paragraph: str) -> bool:
    """A confidentiality notice rather than a customer who mentions something confidential: it speaks of secrecy
    and of its addressee, at some length, and asks nothing."""
    return (
        len(paragraph.split()) >= 8
        and _NOTICE_SECRET.search(paragraph) is not None
        and _NOTICE_ADDRESSEE.search(paragraph) is not None
        and "?" not in paragraph
    )
