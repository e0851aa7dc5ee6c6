"""Names stay out of the logs: the access log's ``q=`` (a person search may be a name) is masked.

uvicorn's access log writes each request's path with its query string; a
search such as ``/v1/persons?q=张三`` (or the web page's ``/review/persons?q=…``)
would put a name into it. This filter replaces the value of ``q`` and
``name`` in the logged path with ``***`` before any handler formats the line.
"""

from __future__ import annotations

import logging
import re

MASKED_PARAMETERS = re.compile(r"([?&](?:q|name)=)[^&#\s]*")


def mask_query(path: str) -> str:
    return MASKED_PARAMETERS.sub(r"\1***", path)


class NameMaskFilter(logging.Filter):
    """Masks the search text in uvicorn access records: args (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_query(args[2]), *args[3:])
        return True


def install() -> None:
    """Adds the filter to uvicorn's access logger once per process."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, NameMaskFilter) for f in logger.filters):
        logger.addFilter(NameMaskFilter())
