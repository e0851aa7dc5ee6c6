"""Personal data masked in every log line: resident ids as ``230102********041X`` (the birth
date hidden), and the value of a ``q=`` or ``name=`` query parameter as ``***`` (a person search
may be a name, and uvicorn's access log writes the path with its query string).

Installed as the process's log record factory (``install``: by ``create_app``
and ``settlement serve``), so it covers every logger and handler — uvicorn's
access log, which formats a record's ``args`` itself, error logs and their
tracebacks included — whatever logging configuration is loaded later. The
message, its string arguments, and a traceback or stack text are masked when
the record is made. Any 18-character resident-id shape is masked (6 digits,
8 digits, 3 digits and a digit or X), valid check character or not.
"""

from __future__ import annotations

import logging
import re
from typing import Any

PERSON_ID = re.compile(r"(?<![0-9])([0-9]{6})[0-9]{8}([0-9]{3}[0-9Xx])(?![0-9A-Za-z])")
NAME_PARAMETER = re.compile(r"([?&](?:q|name)=)[^&#\s]*")


def mask(text: str) -> str:
    """The text with every resident id's birth date replaced by ``********`` and names by ``***``."""
    if len(text) >= 18:
        text = PERSON_ID.sub(r"\1********\2", text)
    return NAME_PARAMETER.sub(r"\1***", text) if "=" in text else text


def _masked(value: Any) -> Any:
    return mask(value) if isinstance(value, str) else value


class MaskedRecord(logging.LogRecord):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.msg = _masked(self.msg)
        if isinstance(self.args, tuple):
            self.args = tuple(_masked(a) for a in self.args)
        elif isinstance(self.args, dict):
            self.args = {k: _masked(v) for k, v in self.args.items()}
        if self.exc_info and self.exc_info[0] is not None:
            self.exc_text = mask(logging.Formatter().formatException(self.exc_info))
        if self.stack_info:
            self.stack_info = mask(self.stack_info)

    def getMessage(self) -> str:
        return mask(super().getMessage())


def install() -> None:
    """Makes every log record a MaskedRecord (idempotent)."""
    if logging.getLogRecordFactory() is not MaskedRecord:
        logging.setLogRecordFactory(MaskedRecord)
