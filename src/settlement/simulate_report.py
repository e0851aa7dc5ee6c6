"""The what-if report as one self-contained HTML page: tables and inline SVG charts, nothing fetched.

Charts are drawn by ``settlement.charts.svg`` (Altair, rendered on this side),
so the page opens offline in any browser and prints as it looks.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from jinja2 import Environment

from settlement.charts import svg
from settlement.layers import SHARES

LABELS = {
    "basic": "基本医保统筹基金",
    "critical_illness": "大病保险",
    "medical_assistance": "医疗救助",
    "charity": "慈善救助",
    "emergency_relief": "疾病应急救助",
    "backstop": "政府兜底",
    "patient_pays": "个人负担",
    "hospital_bears": "医疗机构承担",
}
KEY_LABELS = {
    "category": "人员类别",
    "level": "医院等级",
    "month": "月份",
    "visit_type": "就诊类型",
    "pathway": "结算方式",
}

TEMPLATE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>政策测算报告</title>
<style>
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right}
th{background:#e8eef7}td.k,th.k{text-align:left}.neg{color:#b00}.pos{color:#060}
figure{margin:1em 0}
</style></head><body>
<h1>政策测算报告（What-if）</h1>
<p>基准方案 <code>{{ baseline_dir }}</code>；测算方案 <code>{{ draft_dir }}</code>；
结算单 {{ r.claims }} 笔（<code>{{ claims_name }}</code>），
出错：基准 {{ r.errors.baseline }} 笔、测算 {{ r.errors.draft }} 笔。生成于 {{ generated }}。</p>
<h2>各支付方合计（元）</h2>
<table><tr><th class="k">支付方</th><th>基准</th><th>测算</th><th>差额</th></tr>
{% for layer in layers %}<tr><td class="k">{{ labels[layer] }} <small>{{ layer }}</small></td>
<td>{{ r.baseline[layer] }}</td><td>{{ r.draft[layer] }}</td>
<td class="{{ sign(r.delta[layer]) }}">{{ r.delta[layer] }}</td></tr>{% endfor %}
</table>
<figure>{{ totals_chart | safe }}</figure>
{% if r.groups %}
<h2>分组（{{ by_labels }}）</h2>
{% if group_chart %}<figure>{{ group_chart | safe }}</figure>{% endif %}
<table><tr>{% for k in by %}<th class="k">{{ key_labels[k] }}</th>{% endfor %}
<th>笔数（基准/测算）</th>{% for layer in layers %}<th>{{ labels[layer] }} 差额</th>{% endfor %}</tr>
{% for g in r.groups %}<tr>{% for k in by %}<td class="k">{{ g[k] }}</td>{% endfor %}
<td>{{ g.claims.baseline }} / {{ g.claims.draft }}</td>
{% for layer in layers %}<td class="{{ sign(g.delta[layer]) }}">{{ g.delta[layer] }}</td>{% endfor %}</tr>{% endfor %}
</table>{% endif %}
</body></html>
"""


def _sign(text: str) -> str:
    value = Decimal(text)
    return "neg" if value < 0 else "pos" if value > 0 else ""


def _totals_chart(report: dict[str, Any]) -> str:
    import altair as alt

    rows = [
        {"layer": LABELS[layer], "side": side_label, "yuan": float(report[side][layer])}
        for layer in SHARES
        for side, side_label in (("baseline", "基准"), ("draft", "测算"))
    ]
    chart = (
        alt.Chart(alt.Data(values=rows))  # type: ignore[no-untyped-call]
        .mark_bar()
        .encode(
            x=alt.X("layer:N", title=None, sort=[LABELS[x] for x in SHARES]),
            xOffset="side:N",
            y=alt.Y("yuan:Q", title="元"),
            color=alt.Color("side:N", title="方案"),
        )
        .properties(width=640, height=260, title="各支付方合计：基准与测算")
    )
    return svg(chart)


def _group_chart(report: dict[str, Any], by: list[str]) -> str | None:
    import altair as alt

    if not report["groups"]:
        return None
    rows = []
    for g in report["groups"]:
        name = " · ".join(str(g[k]) for k in by)
        for layer in SHARES:
            value = float(g["delta"][layer])
            if value:
                rows.append({"group": name, "layer": LABELS[layer], "yuan": value})
    if not rows:
        return None
    chart = (
        alt.Chart(alt.Data(values=rows))  # type: ignore[no-untyped-call]
        .mark_bar()
        .encode(
            y=alt.Y("group:N", title=None),
            x=alt.X("yuan:Q", title="差额（元）"),
            color=alt.Color("layer:N", title="支付方"),
        )
        .properties(width=560, title="各组差额（测算 − 基准）")
    )
    return svg(chart)


def render(report: dict[str, Any], by: list[str], baseline_dir: str, draft_dir: str, claims_name: str) -> str:
    """The HTML page of a simulate report (the dict of ``Simulation.report``)."""
    env = Environment(autoescape=True)
    return env.from_string(TEMPLATE).render(
        r=report,
        by=by,
        by_labels="、".join(KEY_LABELS[k] for k in by),
        layers=SHARES,
        labels=LABELS,
        key_labels=KEY_LABELS,
        sign=_sign,
        baseline_dir=baseline_dir,
        draft_dir=draft_dir,
        claims_name=claims_name,
        generated=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M"),
        totals_chart=_totals_chart(report),
        group_chart=_group_chart(report, by),
    )
