"""Message ids for the pages' gettext catalogs, marked where they are written.

``N_`` returns its argument unchanged: Babel extracts the marked strings (``-k N_``, babel.cfg)
and a page translates them where it shows them. One definition for the file reader, the
registry import and the web pages.
"""

from __future__ import annotations


def N_(message: str) -> str:
    """Marks a string for the catalog without translating it (translated where it is shown)."""
    return message
