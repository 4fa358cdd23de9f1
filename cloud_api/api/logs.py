"""Keeping secrets out of the server's access log: an invitation link's token is in
its path (`/invite/<token>`), and uvicorn logs every request's path. The filter
rewrites that part of each access-log record before it is written."""

from __future__ import annotations

import logging
import re

SECRET_PATHS = re.compile(r"(/invite/)[^/?\s]+")
ACCESS_LOGGER = "uvicorn.access"


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                SECRET_PATHS.sub(r"\1…", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        if isinstance(record.msg, str):
            record.msg = SECRET_PATHS.sub(r"\1…", record.msg)
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (once)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
