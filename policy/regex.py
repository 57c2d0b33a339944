"""``matches`` patterns in RE2's dialect: matched in time linear in the text, never by backtracking.

Both the durable_rules path (``extract`` precomputes each match) and the reference evaluator call
``Regex.search``, so the two agree on every pattern and every text. RE2 has no backreferences, lookaround,
atomic groups or possessive quantifiers; ``unsupported_construct`` names such a construct so validation can
say what to change instead of repeating RE2's parser message. A pattern's compiled program is limited to
``max_mem`` bytes (a huge pattern is refused), and only the first ``max_text_chars`` characters of a fact
are searched.
"""

from __future__ import annotations

import re
from typing import Any

import re2  # type: ignore[import-untyped]

_QUANTIFIER_BRACES = re.compile(r"\{\d+(,\d*)?\}")
# Group openings RE2 refuses, longest first so "(?<=" is not read as a named group.
_GROUPS = (
    ("(?<=", "lookbehind (?<=...)"),
    ("(?<!", "negative lookbehind (?<!...)"),
    ("(?=", "lookahead (?=...)"),
    ("(?!", "negative lookahead (?!...)"),
    ("(?>", "atomic group (?>...)"),
    ("(?P=", "named backreference (?P=name)"),
    ("(?P>", "recursion (?P>name)"),
    ("(?(", "conditional group (?(...)...)"),
    ("(?#", "comment group (?#...)"),
    ("(?R", "recursion (?R)"),
)


class RegexError(ValueError):
    """A pattern that cannot be used: unsupported construct, syntax error, or too large."""


def unsupported_construct(pattern: str) -> str | None:
    """The first construct of ``pattern`` outside RE2's dialect, described for a person; None if none.

    Escapes and character classes are skipped as RE2 reads them, so ``\\(?=`` or ``[(?=]`` are literals.
    """
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            following = pattern[i + 1 : i + 2]
            if not in_class:
                if following in ("1", "2", "3", "4", "5", "6", "7", "8", "9"):
                    return f"backreference \\{following}"
                if following in ("g", "k"):
                    return f"backreference \\{following}<...>"
                if following == "Z":
                    return "\\Z (RE2 writes the end of the text as \\z)"
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i) and (end := pattern.find(":]", i + 2)) >= 0:
                i = end + 2  # a POSIX class like [:alpha:] inside brackets
            else:
                in_class = c != "]"
                i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1  # a leading ] is a literal
            continue
        if c == "(" and pattern.startswith("?", i + 1):
            for prefix, name in _GROUPS:
                if pattern.startswith(prefix, i):
                    return name
            i += 2
            continue
        if c in "*+?" and i > 0 and pattern[i - 1] not in "(|" and pattern.startswith("+", i + 1):
            return f"possessive quantifier {c}+"
        if c == "{" and (braces := _QUANTIFIER_BRACES.match(pattern, i)) is not None:
            if pattern.startswith("+", braces.end()):
                return f"possessive quantifier {braces.group()}+"
            i = braces.end()
            continue
        i += 1
    return None


class Regex:
    """A compiled ``matches`` pattern; ``search`` is what ``matches`` means everywhere."""

    __slots__ = ("_compiled", "max_text_chars", "pattern")

    def __init__(self, pattern: str, *, max_mem: int, max_text_chars: int) -> None:
        construct = unsupported_construct(pattern)
        if construct is not None:
            raise RegexError(
                f"{construct} is not supported: patterns use the RE2 dialect, which matches in linear "
                "time (no backreferences, lookaround, atomic groups or possessive quantifiers)"
            )
        options = re2.Options()
        options.max_mem = max_mem
        options.log_errors = False  # a refused pattern is a validation problem, not a log line
        try:
            self._compiled: Any = re2.compile(pattern, options)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "invalid pattern"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            if "pattern too large" in reason:
                raise RegexError(
                    f"pattern too large: its RE2 program needs more than {max_mem} bytes "
                    "(simplify it or split it into several conditions)"
                ) from None
            raise RegexError(f"invalid regular expression (RE2 syntax): {reason}") from None
        self.pattern = pattern
        self.max_text_chars = max_text_chars

    def search(self, text: str) -> bool:
        """Whether the pattern occurs in the first ``max_text_chars`` characters of ``text``."""
        if len(text) > self.max_text_chars:
            text = text[: self.max_text_chars]
        # Lone surrogates cannot be UTF-8 encoded strictly; pass them through rather than fail the match.
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r}, max_text_chars={self.max_text_chars})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Regex)
            and other.pattern == self.pattern
            and other.max_text_chars == self.max_text_chars
        )

    def __hash__(self) -> int:
        return hash((self.pattern, self.max_text_chars))
