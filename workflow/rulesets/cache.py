"""Parsed rulesets by source digest, so a request never re-parses YAML it has already seen; and the input
limits every ruleset of this process is validated under.

Parsing a large stored version is CPU-heavy (a 2,000-rule ruleset: about 0.35 s of validation), and in a
server process that time holds the GIL every other merchant's request needs. A server can hand parsing to
another process (``parser``, set by the API to its ruleset workers); this cache then only stores the
result. Without one, or when it fails, the ruleset is parsed here."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

import policy
from policy import Ruleset, RulesetLimits

log = logging.getLogger(__name__)


class RulesetCache:
    """An LRU of parsed rulesets keyed by digest; thread-safe. ``limits`` bound every ruleset it parses."""

    def __init__(self, size: int = 256, limits: RulesetLimits | None = None) -> None:
        self._size = size
        self.limits = limits or RulesetLimits()
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Ruleset] = OrderedDict()
        self._default: Ruleset | None = None
        # Parses a source under ``limits`` somewhere else (raises policy.RulesetInvalid like load_ruleset).
        self.parser: Callable[[str], Ruleset] | None = None

    def cached(self, digest: str) -> Ruleset | None:
        with self._lock:
            found = self._items.get(digest)
            if found is not None:
                self._items.move_to_end(digest)
            return found

    def get(self, digest: str, source: str) -> Ruleset:
        found = self.cached(digest)
        if found is not None:
            return found
        ruleset = self._parse(source)
        with self._lock:
            self._items[digest] = ruleset
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ruleset

    def _parse(self, source: str) -> Ruleset:
        parser = self.parser
        if parser is not None:
            try:
                return parser(source)
            except policy.RulesetInvalid:
                raise
            except Exception:  # the other process is gone or broken: correctness first, parse here
                log.warning("parsing a ruleset in a worker process failed; parsing it here", exc_info=True)
        return policy.load_ruleset(source, limits=self.limits)

    def default(self) -> Ruleset:
        if self._default is None:
            self._default = policy.load_default_ruleset()
        return self._default
