"""Bounds on ruleset input, so a hostile draft costs milliseconds and little memory before it is refused.

Every limit is refused as a coded problem at the line where it is crossed (see ``validate``):

* ``E_SOURCE_TOO_LARGE`` the source is longer than ``max_source_bytes`` (UTF-8);
* ``E_YAML_TOO_MANY_NODES`` the document, with every alias expanded, has more than ``max_yaml_nodes``
  nodes (keys count); counted while composing, so a "billion laughs" stops after a few hundred bytes;
* ``E_YAML_TOO_DEEP`` collections nested more than ``max_depth`` levels (checked before any recursion
  could reach Python's own limit);
* ``E_YAML_RECURSIVE_ALIAS`` an alias inside the node its anchor names;
* ``E_TOO_MANY_RULES`` more than ``max_rules`` rules across permissions, routing, escalations and handoff;
* ``E_BAD_REGEX`` a ``matches`` pattern RE2 cannot run, or whose program needs more than
  ``regex_max_mem_bytes``.

``regex_max_text_chars`` bounds the text a pattern is matched against: only the first that many characters
of a fact are searched.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RulesetLimits:
    max_source_bytes: int = 512 * 1024
    max_yaml_nodes: int = 150_000
    max_depth: int = 50
    max_rules: int = 4_000
    regex_max_text_chars: int = 50_000
    regex_max_mem_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "max_source_bytes",
            "max_yaml_nodes",
            "max_depth",
            "max_rules",
            "regex_max_text_chars",
            "regex_max_mem_bytes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
