"""Charts for people: Vega-Lite specs (built with Altair) rendered to SVG on the server.

The one way the project draws a chart, for the web pages and for the offline
HTML reports: no JavaScript, no CDN, nothing fetched — the SVG is inline in the
page. ``vl-convert`` embeds its own renderer (no browser, no network).
"""

from __future__ import annotations

from typing import Any


def svg(chart: Any) -> str:
    """An Altair chart (or a Vega-Lite spec as a dict) as an SVG document string."""
    import vl_convert  # its renderer loads on the first chart, not at every start

    spec = chart if isinstance(chart, dict) else chart.to_dict()
    return str(vl_convert.vegalite_to_svg(spec))


__all__ = ["svg"]
