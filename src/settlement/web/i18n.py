"""Page languages: Simplified Chinese by default, English selectable, from gettext catalogs.

The catalogs are the ``.po`` files under ``settlement/locale`` (extracted with
Babel, ``babel.cfg``); they are compiled in memory when the process starts, so a
new install or a changed translation needs no build step. Source strings are
English; an English page uses them as they are.
"""

from __future__ import annotations

import datetime as dt
import gettext
import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from settlement.catalog import N_ as N_  # re-exported for the web modules

LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"
LANGUAGES = ("zh_CN", "en")
DEFAULT = "zh_CN"
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalog of a language, compiled from its .po file (English: the source strings)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not po.exists():
        if language != "en":
            raise FileNotFoundError(f"no catalog {po}")
        return gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def negotiate(accept_language: str | None) -> str:
    """The page language for a browser's Accept-Language header; Chinese when it names neither."""
    if not accept_language:
        return DEFAULT
    weighted: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag:
            weighted.append((-q, i, tag.strip().replace("-", "_")))
    for _q, _i, tag in sorted(weighted):
        if _q >= 0:  # q=0: "not this one"
            continue
        base = tag.split("_")[0].lower()  # zh, zh-CN, zh-Hans-CN … → Chinese; en, en-US … → English
        if base == "zh":
            return "zh_CN"
        if base == "en":
            return "en"
    return DEFAULT


def yuan(fen: int | None) -> str:
    """Money for people: ¥1,234.56 (from integer fen, no float)."""
    if fen is None:
        return ""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def iso_date(value: dt.date | dt.datetime | None, tz: dt.tzinfo | None = None) -> str:
    """Dates as ISO (2019-03-01); timestamps as local ISO minutes (2019-03-01 14:05)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        if tz is not None:
            value = value.astimezone(tz)
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


Gettext = Callable[[str], str]
