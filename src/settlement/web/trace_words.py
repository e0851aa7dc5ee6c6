"""The engine's trace in the page's language.

The engine writes its trace in English with the numbers in place
(engine.trace.render_trace). Its fixed phrases are catalog messages here;
a trace line is shown with each phrase replaced by its translation (longest
phrase first, whole words only) and every number, code and schedule key as
the engine wrote it — so the translated line still shows exactly what was computed.
"""

from __future__ import annotations

import re
from functools import cache

from .i18n import N_, Gettext

PHRASES = (
    N_("person's annual cap remaining"),
    N_("annual cap remaining"),
    N_("pool remaining"),
    N_("personal share limit"),
    N_("of the base"),
    N_("patient pays"),
    N_("hospital bears"),
    N_("fully self-paid"),
    N_("over limit"),
    N_("pre-self-paid"),
    N_("in scope"),
    N_("total"),
    N_("schedule"),
    N_("in force from"),
    N_("policy year"),
    N_("standard pathway"),
    N_("diagnosis group"),
    N_("but no treatment was given"),
    N_("the fixed standard does not apply to this claim"),
    N_("fixed standard for"),
    N_("outside the annual caps"),
    N_("claim's deductible"),
    N_("annual deductible"),
    N_("deductible"),
    N_("for level"),
    N_("rate"),
    N_("pays"),
    N_("adds"),
    N_("to the year's base"),
    N_("bands"),
    N_("plus the category's bonus"),
    N_("payable"),
    N_("no cap"),
    N_("not eligible (category, visit type or diagnosis group)"),
    N_("remaining"),
    N_("does not apply to"),
    N_("does not apply"),
    N_("claims"),
    N_("category"),
    N_("level"),
    N_("treatment"),
    N_("sessions"),
    N_("per"),
    N_("base"),
    N_("standard"),
    N_("no section"),
    N_("to"),
    N_("at"),
)


@cache
def _pattern() -> re.Pattern[str]:
    ordered = sorted(PHRASES, key=len, reverse=True)
    return re.compile(r"(?<![\w.\[])(" + "|".join(re.escape(p) for p in ordered) + r")(?![\w\]])")


def translate(text: str, _: Gettext) -> str:
    """The trace line with its phrases in the page's language (numbers and keys untouched)."""
    return _pattern().sub(lambda m: _(m.group(1)), text)
