"""The one exception a CLI handler raises for bad input: printed as a single line, non-zero exit."""

from __future__ import annotations


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
