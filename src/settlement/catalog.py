"""Message ids for the pages' gettext catalogs, marked where they are written.

``N_`` returns its argument unchanged: Babel extracts the marked strings (``-k N_``, babel.cfg)
and a page translates them where it shows them. One definition for the file reader, the
registry import and the web pages. ``Message`` and ``MessageError`` carry such an id with its values
from where a check fails to the page that shows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def N_(message: str) -> str:
    """Marks a string for the catalog without translating it (translated where it is shown)."""
    return message


@dataclass(frozen=True)
class Message:
    """A message for people: a catalog id (English, ``%(name)s`` placeholders) and its values.

    ``str()`` is the English text (what the API says); a page says it in its language with
    :meth:`render`, values that are Messages themselves translated too.
    """

    id: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def render(self, gettext: Callable[[str], str]) -> str:
        if not self.values:
            return gettext(self.id)
        values = {k: v.render(gettext) if isinstance(v, Message) else v for k, v in self.values.items()}
        return gettext(self.id) % values

    def __str__(self) -> str:
        return self.render(str)


class MessageError(ValueError):
    """A ValueError whose text is a catalog Message: ``str()`` is the English text (the API's), and
    ``message`` lets a page say it in its language (pydantic keeps the exception in an error's ctx)."""

    def __init__(self, message_id: str, **values: Any) -> None:
        self.message = Message(message_id, values)
        super().__init__(str(self.message))
