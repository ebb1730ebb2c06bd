"""Logging of the long-running commands (``watch``, ``demo``): text or JSON lines on stderr, or a file."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["JsonFormatter", "LogFormat", "configure_logging", "log_to_file"]


class LogFormat(StrEnum):
    text = "text"
    json = "json"


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: LogRecord attributes that are not ``extra=`` context.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_NOISY = ("watchdog", "alembic")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message and the ``extra`` context."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(fmt: LogFormat | str = LogFormat.text, level: int | None = None) -> None:
    """Send logs to stderr, human-readable or JSON lines; replaces the root logger's handlers.

    Args:
        fmt: ``text`` or ``json``.
        level: root level; None keeps DEBUG when ``--verbose`` set it, else INFO.
    """
    root = logging.getLogger()
    if level is None:
        level = logging.DEBUG if root.level == logging.DEBUG else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if LogFormat(fmt) == LogFormat.json else logging.Formatter(_TEXT_FORMAT)
    )
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def log_to_file(path: Path) -> None:
    """Logs go to ``path`` (replaced), errors also to stderr (the console shows a progress line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    to_file = logging.FileHandler(path, mode="w")
    to_file.setFormatter(logging.Formatter(_TEXT_FORMAT))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setLevel(logging.ERROR)
    to_console.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root.handlers[:] = [to_file, to_console]
    root.setLevel(logging.DEBUG if root.level == logging.DEBUG else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
