"""Parsed rulesets by source digest, so a request never re-parses YAML it has already seen; and the input
limits every ruleset of this process is validated under."""

from __future__ import annotations

import threading
from collections import OrderedDict

import policy
from policy import Ruleset, RulesetLimits


class RulesetCache:
    """An LRU of parsed rulesets keyed by digest; thread-safe. ``limits`` bound every ruleset it parses."""

    def __init__(self, size: int = 256, limits: RulesetLimits | None = None) -> None:
        self._size = size
        self.limits = limits or RulesetLimits()
        self._lock = threading.Lock()
        self._items: OrderedDict[str, Ruleset] = OrderedDict()
        self._default: Ruleset | None = None

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
        ruleset = policy.load_ruleset(source, limits=self.limits)
        with self._lock:
            self._items[digest] = ruleset
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return ruleset

    def default(self) -> Ruleset:
        if self._default is None:
            self._default = policy.load_default_ruleset()
        return self._default
