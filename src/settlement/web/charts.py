"""The workspace's charts: Altair (Vega-Lite) specs, drawn to SVG on the server by settlement.charts.svg.

Positions are yuan as floats (only where the bar goes); every number a person
reads is a label made from integer fen by i18n.yuan, so a chart never shows a
rounded float.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from settlement.charts import svg

from .i18n import Gettext, yuan
from .labels import PAYERS


class _Altair:
    """altair, imported on first use: its import (~0.5 s with narwhals) stays off `serve`'s start."""

    def __getattr__(self, name: str) -> Any:
        import altair

        return getattr(altair, name)


alt: Any = _Altair()

FONT = "Noto Sans CJK SC, Source Han Sans SC, Microsoft YaHei, PingFang SC, sans-serif"
PART_COLORS = ("#b07a61", "#e0b45a", "#9fb3c8", "#5b6b7f")
"""The bill's parts in the total's bar: fully self-paid, over-limit, pre-self-paid, in scope."""
COLORS = {
    "basic": "#1f6fb2",
    "critical_illness": "#3d8fd1",
    "medical_assistance": "#2e9e6e",
    "charity": "#7bbf4a",
    "emergency_relief": "#9c7ad6",
    "backstop": "#d69a2e",
    "patient_pays": "#c8553d",
    "hospital_bears": "#8a5a44",
}


def _config(chart: Any, width: int, height: int) -> Any:
    return (
        chart.properties(width=width, height=height)
        .configure(font=FONT)
        .configure_view(strokeWidth=0)
        .configure_axis(labelFontSize=12, titleFontSize=12, gridColor="#e6e9ee")
        .configure_legend(labelFontSize=12, titleFontSize=12, orient="bottom")
    )


def draw(chart: Any) -> str:
    """The chart's SVG without the XML prolog, to inline in a page. Drawing costs 0.1-2 s of CPU, so the
    last CACHED drawings are kept by their spec: a settlement's charts never change, and a dashboard
    looked at twice draws nothing again."""
    spec = json.dumps(chart if isinstance(chart, dict) else chart.to_dict(validate=False), sort_keys=True, default=str)
    return _drawn(spec)


CACHED = 512


@lru_cache(maxsize=CACHED)
def _drawn(spec: str) -> str:
    text = svg(json.loads(spec))
    return text[text.index("<svg"):] if "<svg" in text else text


def warm_up() -> None:
    """Loads vl-convert's renderer (about 1 s of CPU, more on a busy machine) before the first page needs it."""
    draw(_config(alt.Chart(alt.InlineData(values=[{"x": "a", "y": 1}])).mark_bar().encode(x="x:N", y="y:Q"), 10, 10))


def waterfall(steps: Sequence[tuple[str, str, int]], total_fen: int, parts: Sequence[tuple[str, int]],
              total_label: str, _: Gettext, width: int = 1180) -> str:
    """The bill as a waterfall: the total (stacked by its parts), then each payer's share taken off
    what is left, down to zero. ``steps``: (key, label, fen) in paying order; ``parts``: (label, fen)."""
    rows: list[dict[str, Any]] = []
    order = [total_label]
    low = 0
    for (label, fen), color in zip(parts, PART_COLORS, strict=True):
        if fen <= 0:
            continue
        rows.append({"step": total_label, "start": low / 100, "end": (low + fen) / 100, "part": label,
                     "label": "", "color": color})
        low += fen
    rows.append({"step": total_label, "start": 0, "end": total_fen / 100, "part": "", "label": yuan(total_fen),
                 "color": "none"})
    level = total_fen
    for key, label, fen in steps:
        if fen <= 0:
            continue
        order.append(label)
        rows.append({"step": label, "start": (level - fen) / 100, "end": level / 100, "part": "",
                     "label": yuan(fen), "color": COLORS.get(key.split(":")[0], COLORS["charity"])})
        level -= fen
    base = alt.Chart(alt.InlineData(values=rows))
    x = alt.X("step:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelLimit=120))
    bars = base.transform_filter("datum.color != 'none'").mark_bar(stroke="#ffffff", strokeWidth=0.5).encode(
        x=x, y=alt.Y("start:Q", title=_("Yuan"), axis=alt.Axis(format=",.0f")), y2="end:Q",
        color=alt.Color("color:N", scale=None), tooltip=["step:N", "part:N", "label:N"],
    )
    labels = base.transform_filter("datum.label != ''").mark_text(dy=-6, fontSize=12, color="#222").encode(
        x=x, y="end:Q", text="label:N",
    )
    return draw(_config(bars + labels, width, 300))


def cap_bars(rows: Sequence[tuple[str, int, int, int]], _: Gettext, width: int = 420,
             labels: tuple[str, str, str] | None = None) -> str:
    """Each capped accumulator as a share of its cap: used before, this claim, the room left
    (rows of label, before, added, room; fen)."""
    names = labels or (_("Before this claim"), _("This claim"), _("Room left"))
    palette = ["#1f6fb2", "#d69a2e", "#dfe5ec"] if names[1] else ["#1f6fb2", "#dfe5ec"]
    data: list[dict[str, Any]] = []
    for label, before, added, room in rows:
        for order, (part, fen) in enumerate(zip(names, (before, added, room), strict=True)):
            if part:
                data.append({"layer": label, "part": part, "order": order, "fen": fen, "value": fen / 100})
    chart = alt.Chart(alt.InlineData(values=data)).mark_bar().encode(
        y=alt.Y("layer:N", title=None, sort=None, axis=alt.Axis(labelLimit=160)),
        x=alt.X("value:Q", stack="normalize", title=_("Share of the annual cap"), axis=alt.Axis(format="%")),
        color=alt.Color("part:N", title=None, sort=[n for n in names if n],
                        scale=alt.Scale(range=palette)),
        order=alt.Order("order:Q"),
        tooltip=["layer:N", "part:N", "value:Q"],
    )
    return draw(_config(chart, width, max(40, 28 * len(rows))))


def stacked_by(rows: Sequence[dict[str, Any]], x_field: str, x_title: str, _: Gettext,
               layer_order: Sequence[str], width: int = 600, height: int = 240, horizontal: bool = False) -> str:
    """Payments stacked by layer along x_field (month, category, hospital level): rows {x_field, layer, fen}."""
    data = [{**r, "value": r["fen"] / 100, "label": yuan(r["fen"])} for r in rows]
    palette = [COLORS.get(k, "#888888") for k in PAYERS]
    enc: dict[str, Any]
    if horizontal:
        enc = {"y": alt.Y(f"{x_field}:N", title=None, sort=None, axis=alt.Axis(labelLimit=160)),
               "x": alt.X("value:Q", title=_("Yuan"), axis=alt.Axis(format=",.0f"))}
    else:
        enc = {"x": alt.X(f"{x_field}:N", title=x_title, sort=None, axis=alt.Axis(labelAngle=0, labelLimit=140)),
               "y": alt.Y("value:Q", title=_("Yuan"), axis=alt.Axis(format=",.0f"))}
    chart = alt.Chart(alt.InlineData(values=data)).mark_bar().encode(
        color=alt.Color("layer:N", title=None, sort=list(layer_order),
                        scale=alt.Scale(domain=list(layer_order), range=palette[: len(layer_order)])),
        order=alt.Order("order:Q"),
        tooltip=[f"{x_field}:N", "layer:N", "label:N"],
        **enc,
    )
    return draw(_config(chart, width, height))


def pool_bars(rows: Sequence[tuple[str, int, int | None]], _: Gettext, width: int = 420) -> str:
    """Each charity pool's use against its annual limit: (name, used, pool or None)."""
    data = []
    for name, used, pool in rows:
        limit = pool if pool is not None else used
        data.append({"fund": name, "part": _("Used"), "order": 0, "value": used / 100, "label": yuan(used)})
        data.append({"fund": name, "part": _("Remaining"), "order": 1, "value": max(0, limit - used) / 100,
                     "label": yuan(max(0, limit - used)) if pool is not None else _("no limit")})
    chart = alt.Chart(alt.InlineData(values=data)).mark_bar().encode(
        y=alt.Y("fund:N", title=None, sort=None, axis=alt.Axis(labelLimit=180)),
        x=alt.X("value:Q", stack="zero", title=_("Yuan"), axis=alt.Axis(format=",.0f")),
        color=alt.Color("part:N", title=None, sort=[_("Used"), _("Remaining")],
                        scale=alt.Scale(range=["#2e9e6e", "#dfe5ec"])),
        order=alt.Order("order:Q"),
        tooltip=["fund:N", "part:N", "label:N"],
    )
    return draw(_config(chart, width, max(40, 34 * len(rows))))


def ranked_bars(rows: Sequence[tuple[str, int]], title: str, _: Gettext, width: int = 420) -> str:
    """One bar per name (hospitals by hospital_bears), largest first, with its amount."""
    data = [{"name": n, "value": f / 100, "label": yuan(f)} for n, f in rows]
    base = alt.Chart(alt.InlineData(values=data))
    y = alt.Y("name:N", title=None, sort=None)
    bars = base.mark_bar(color=COLORS["hospital_bears"]).encode(
        y=y, x=alt.X("value:Q", title=title, axis=alt.Axis(format=",.0f")))
    text = base.mark_text(align="left", dx=4, fontSize=11).encode(y=y, x="value:Q", text="label:N")
    return draw(_config(bars + text, width, max(40, 26 * len(rows))))


def timeline(periods: Sequence[tuple[str, Any, Any]], today: Any, _: Gettext, width: int = 560) -> str:
    """A person's category periods as bars along the dates (an open-ended one runs to today)."""
    data = [{"category": c, "start": start.isoformat(), "end": (end or max(today, start)).isoformat(),
             "label": f"{start.isoformat()} – {end.isoformat() if end else _('open')}"}
            for c, start, end in periods]
    base = alt.Chart(alt.InlineData(values=data))
    bars = base.mark_bar(cornerRadius=3, height=18, color="#1f6fb2").encode(
        x=alt.X("start:T", title=None, axis=alt.Axis(format="%Y-%m")), x2="end:T",
        y=alt.Y("category:N", title=None, sort=None), tooltip=["category:N", "label:N"])
    return draw(_config(bars, width, max(40, 30 * len({c for c, _s, _e in periods}))))


def month_amounts(months: Sequence[dict[str, Any]], _: Gettext, width: int = 560) -> str:
    """A fund's statement: the net amount booked per month (settlements less reversals), each bar labelled."""
    data = [{"month": m["period"], "value": m["amount"] / 100, "label": yuan(m["amount"])} for m in months]
    base = alt.Chart(alt.InlineData(values=data))
    x = alt.X("month:N", title=None, sort=None, axis=alt.Axis(labelAngle=0))
    bars = base.mark_bar(color=COLORS["critical_illness"]).encode(
        x=x, y=alt.Y("value:Q", title=_("Yuan"), axis=alt.Axis(format=",.0f")), tooltip=["month:N", "label:N"])
    text = base.mark_text(dy=-6, fontSize=11, color="#222").encode(x=x, y="value:Q", text="label:N")
    return draw(_config(bars + text, width, 240))


def month_counts(months: Sequence[dict[str, Any]], _: Gettext, width: int = 560) -> str:
    """A fund's statement: settlements and reversals booked per month, side by side, each bar labelled."""
    kinds = (_("Settlements"), _("Reversals"))
    data = [{"month": m["period"], "kind": kind, "n": m[key]}
            for m in months for kind, key in zip(kinds, ("settlements", "reversals"), strict=True)]
    base = alt.Chart(alt.InlineData(values=data))
    x = alt.X("month:N", title=None, sort=None, axis=alt.Axis(labelAngle=0))
    offset = alt.XOffset("kind:N", sort=list(kinds))
    bars = base.mark_bar().encode(
        x=x, xOffset=offset, y=alt.Y("n:Q", title=_("Count")),
        color=alt.Color("kind:N", title=None, sort=list(kinds), scale=alt.Scale(range=["#2e9e6e", "#c8553d"])),
        tooltip=["month:N", "kind:N", "n:Q"])
    text = base.mark_text(dy=-6, fontSize=11, color="#222").encode(x=x, xOffset=offset, y="n:Q", text="n:Q")
    return draw(_config(bars + text, width, 240))
