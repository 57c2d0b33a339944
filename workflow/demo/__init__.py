"""Demo data for ``bookbag serve --demo``."""
