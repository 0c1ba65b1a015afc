"""structlog set-up: JSON lines an operator can grep by document, sender or recipient."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog


def configure(*, json: bool = True, level: str = "INFO", file: TextIO | None = None) -> None:
    """One call at process start; libraries log through the same pipeline.

    ``file`` sends everything there instead of stderr (``lgsp demo`` keeps the terminal
    for its display and the JSON lines in a file).
    """
    numeric = getattr(logging, level.upper(), logging.INFO)
    stream = file or sys.stderr
    logging.basicConfig(stream=stream, level=numeric, format="%(message)s", force=True)
    # Their per-request lines are not JSON and say nothing the bus's own events do not.
    for noisy in ("httpx", "httpcore", "pika", "zeep", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
