"""The server's log lines: plain text (``BOOKBAG_LOG_FORMAT=text``, the default) or one JSON object per line
(``json``), for the ``bookbag.*`` loggers and uvicorn's.

In JSON every record has ``ts`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, plus the fields a
record carries in ``extra`` (:data:`FIELDS`): the request log line of ``bookbag.request`` (one per HTTP
request to ``/graphql``, in JSON mode only; it replaces uvicorn's access log there) has ``request_id``,
``merchant`` (the merchant id of the key), ``operation`` (the operation names, comma-separated for a
batch), ``status`` and ``duration_ms``. An exception adds ``exc_type`` and ``traceback``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

FIELDS = ("request_id", "merchant", "operation", "status", "duration_ms", "method", "path", "client")
LOGGERS = ("bookbag", "uvicorn", "uvicorn.error", "uvicorn.access")
TEXT_FORMAT = "%(levelname)-9s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str, log_format: str) -> None:
    """Text: one handler for the ``bookbag.*`` loggers (uvicorn prints its own lines). JSON: one JSON handler
    each for ``bookbag.*`` and uvicorn's loggers, replacing theirs (run uvicorn with ``log_config=None``).
    Call before ``create_app``; calling again replaces the handlers, never adds a second."""
    json_lines = log_format == "json"
    formatter = JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT)
    for name in LOGGERS if json_lines else LOGGERS[:1]:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        handler = logging.StreamHandler()
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = name == "bookbag" and not json_lines
