"""Log lines without secrets: the link tokens in paths are redacted.

A token in ``/unsubscribe/...``, ``/preferences/...`` or ``/confirm/...`` acts
like a password for one person's subscription, so no log line may hold one:
the formatters of :func:`log_config` (uvicorn's, wrapped) pass every finished
line, access log and tracebacks included, through :func:`redact`.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG
from uvicorn.logging import AccessFormatter, DefaultFormatter

__all__ = [
    "REDACTED",
    "RedactingAccessFormatter",
    "RedactingFormatter",
    "log_config",
    "redact",
]

REDACTED = "[redacted]"

# the segment after a token route, and any token-shaped word elsewhere (c|u|p.id.time.sig)
_TOKEN_PATH = re.compile(r"(/(?:unsubscribe|preferences|confirm)/)[^/\s?#\"'<>]+", re.IGNORECASE)
_TOKEN_WORD = re.compile(r"\b[cup]\.[0-9a-f]{1,16}\.[0-9a-f]{1,16}\.[A-Za-z0-9_-]{8,}")


def redact(text: str) -> str:
    """``text`` with every link token replaced by ``[redacted]``."""
    return _TOKEN_WORD.sub(REDACTED, _TOKEN_PATH.sub(r"\1" + REDACTED, text))


class RedactingFormatter(DefaultFormatter):
    """uvicorn's default formatter, with tokens redacted from the whole line."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted line (and traceback), redacted."""
        return redact(super().format(record))


class RedactingAccessFormatter(AccessFormatter):
    """uvicorn's access-log formatter, with tokens redacted from the request line."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted access line, redacted."""
        return redact(super().format(record))


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with redacting formatters; ``newsletter`` logs too."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["default"]["()"] = f"{__name__}.RedactingFormatter"
    config["formatters"]["access"]["()"] = f"{__name__}.RedactingAccessFormatter"
    config["loggers"]["newsletter"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
