"""Logging for every process: text by default, or one JSON object per line (``HOTLINE_LOG_FORMAT=json``)
for a log shipper. Caller numbers are already masked by whoever logs them (``hotline.phone``)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "process": record.processName,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str | int, fmt: str, text_format: str = TEXT) -> None:
    """``logging.basicConfig`` with the chosen format, on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(text_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
