"""Vega-Lite chart specs for the report pages, built as plain dicts from rows.

Each builder returns a Vega-Lite v6 spec with its data inline (`data: {values: rows}`), so the
browser fetches nothing but the page and cldx's own scripts; `static/charts.js` draws it with the
vendored Vega, Vega-Lite and vega-embed (see `static/vendor/README.md`). A page embeds a spec in
a JSON data block, which the browser never executes (so the Content Security Policy allows it):

    <figure class="chart">
      <script type="application/json" class="chart-spec">{{ spec_json(spec) | safe }}</script>
    </figure>

or serves it from a URL: `<figure class="chart" data-spec-url="/reports/…/chart.json">`. Once drawn,
charts.js puts "Download PNG" and "Download SVG" buttons after the figure; the files are named
from `data-file-name` on the figure (e.g. "reach-people"), else from the spec's title.

Suppressed values (None, also NaN) are never drawn: bars, points and intervals for them are
filtered out (their category stays on the axis, an empty slot rather than a vanished row), and a
line breaks at them instead of bridging the gap. Every spec carries a `description`, which
charts.js gives the chart as its accessible name (role="img" on the figure, or on the chart
inside a figure with a <figcaption>) and Vega gives the SVG.

Field names must be plain (no ".", "[", "]" or "\\"): Vega-Lite reads those as nested access.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"

# Funnel plot points: the flags `cldx.analysis.statistics.classify` gives, in the legend's order,
# with a colour (blue below, orange/red above, grey within) and a shape (direction) each, so a
# flag never rests on colour alone. Other flags follow in the order they first appear.
FUNNEL_FLAGS: dict[str, tuple[str, str]] = {
    "below 99.8%": ("#0b4f6c", "triangle-down"),
    "below 95%": ("#3a8fc4", "triangle-down"),
    "within": ("#6b7480", "circle"),
    "above 95%": ("#c26a00", "triangle-up"),
    "above 99.8%": ("#b3261e", "triangle-up"),
}
OTHER_FLAG_COLOURS = ["#6a3d9a", "#1b7837", "#8c510a", "#4d4d4d"]
FUNNEL_LIMITS = {"low95": "95%", "high95": "95%", "low998": "99.8%", "high998": "99.8%"}
REFERENCE_COLOUR = "#4d5661"

_UNSAFE_FIELD_CHARACTERS = set(".[]\\")


def bar_chart(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, color: str | None = None, title: str, description: str,
              x_title: str | None = None, y_title: str | None = None) -> dict[str, Any]:
    """Bars of `y` (a number) for each category `x`, in the rows' order; grouped by `color` if given."""
    _check_fields(x, y, color)
    values = _values(rows)
    encoding: dict[str, Any] = {
        "x": {"field": x, "type": "nominal", "title": x_title if x_title is not None else x, "sort": None,
              "scale": {"domain": _distinct(values, x)}, "axis": {"labelAngle": 0, "labelLimit": 160}},
        "y": {"field": y, "type": "quantitative", "title": y_title if y_title is not None else y},
        "tooltip": _tooltip(x, color, y),
    }
    if color is not None:
        encoding["xOffset"] = {"field": color, "type": "nominal", "sort": None, "scale": {"domain": _distinct(values, color)}}
        encoding["color"] = {"field": color, "type": "nominal", "sort": None, "scale": {"domain": _distinct(values, color)},
                             "legend": {"orient": "bottom"}}
    return {
        **_base(title, description, values),
        "transform": [_valid(y)],
        "mark": {"type": "bar"},
        "encoding": encoding,
    }


def line_chart(rows: Sequence[Mapping[str, Any]], *, x: str, y: str, color: str | None = None, title: str, description: str,
               x_title: str | None = None, y_title: str | None = None, time_unit: str = "utcyearmonth",
               x_format: str = "%b %Y") -> dict[str, Any]:
    """A line of `y` over time `x` ("2017-08", "2017-08-01" or a date), one line per `color`.

    Months are read as UTC (`utcyearmonth`) so a viewer west of Greenwich still sees August as
    August. A suppressed value is a gap in the line and has no point.
    """
    _check_fields(x, y, color)
    values = _values(rows)
    encoding: dict[str, Any] = {
        "x": {"field": x, "type": "temporal", "timeUnit": time_unit, "title": x_title if x_title is not None else x,
              "axis": {"format": x_format, "labelOverlap": True}},
        "y": {"field": y, "type": "quantitative", "title": y_title if y_title is not None else y},
        "tooltip": [{"field": x, "type": "temporal", "timeUnit": time_unit, "format": x_format,
                     "title": x_title if x_title is not None else x}, *_tooltip(color, y)],
    }
    if color is not None:
        encoding["color"] = {"field": color, "type": "nominal", "sort": None, "scale": {"domain": _distinct(values, color)},
                             "legend": {"orient": "bottom"}}
    return {
        **_base(title, description, values),
        # "break-paths-filter-domains": a null breaks the line, and its point is not drawn.
        "mark": {"type": "line", "point": True, "invalid": "break-paths-filter-domains"},
        "encoding": encoding,
    }


def interval_chart(rows: Sequence[Mapping[str, Any]], *, category: str, value: str, low: str, high: str, title: str,
                   description: str, reference: float | None = None, category_title: str | None = None,
                   value_title: str | None = None, reference_label: str = "Reference") -> dict[str, Any]:
    """One row per category: a point at `value` and a rule from `low` to `high` (a confidence
    interval), categories down the side in the rows' order; an optional dashed `reference` line."""
    _check_fields(category, value, low, high)
    values = _values(rows)
    value_title = value_title if value_title is not None else value
    categories = _distinct(values, category)
    y = {"field": category, "type": "nominal", "sort": None, "scale": {"domain": categories},
         "title": category_title if category_title is not None else category, "axis": {"labelLimit": 220}}
    tooltip = _tooltip(category, value, low, high)
    layers: list[dict[str, Any]] = [
        {
            "transform": [_valid(low), _valid(high)],
            "mark": {"type": "rule", "strokeWidth": 2, "color": "#0b4f6c"},
            "encoding": {"y": y, "x": {"field": low, "type": "quantitative", "title": value_title},
                         "x2": {"field": high}, "tooltip": tooltip},
        },
        {
            "transform": [_valid(value)],
            "mark": {"type": "point", "filled": True, "size": 70},
            "encoding": {"y": y, "x": {"field": value, "type": "quantitative", "title": value_title}, "tooltip": tooltip},
        },
    ]
    if reference is not None:
        layers.append(_reference_rule("x", reference, reference_label))
    return {
        **_base(title, description, values),
        # 28 px a category (a number, not {"step": 28}, which Vega-Lite warns about with width "container").
        "height": 28 * max(1, len(categories)),
        "layer": layers,
    }


def funnel_chart(points: Sequence[Mapping[str, Any]], limits: Sequence[Mapping[str, Any]], *, x: str, y: str, title: str,
                 description: str, x_title: str | None = None, y_title: str | None = None, flag: str = "flag",
                 label: str | None = None, target: float | None = None, target_label: str = "Target") -> dict[str, Any]:
    """A funnel plot: each unit at (`x`, `y`) coloured and shaped by its `flag`, over the control
    limits (dashed 95%, solid 99.8%) and a horizontal rule at the target.

    `limits` rows hold the same `x` field plus low95, high95, low998 and high998 (e.g. from
    `cldx.analysis.statistics.proportion_funnel` on a grid of sizes). `target` defaults to the
    limits rows' `target` field when they all carry the same one; with neither, no rule is drawn.
    `label` names a field (e.g. the provider) shown first in each point's tooltip.
    """
    _check_fields(x, y, flag, label)
    point_values = _values(points)
    limit_values = _values(limits)
    if target is None:
        targets = {row.get("target") for row in limit_values}
        if len(targets) == 1 and None not in targets:
            target = targets.pop()
    x_axis = {"title": x_title if x_title is not None else x}
    y_title = y_title if y_title is not None else y
    flags = [f for f in FUNNEL_FLAGS if f in _distinct(point_values, flag)]
    others = [f for f in _distinct(point_values, flag) if f not in FUNNEL_FLAGS and f is not None]
    domain = flags + others
    colours = [FUNNEL_FLAGS[f][0] for f in flags] + [OTHER_FLAG_COLOURS[i % len(OTHER_FLAG_COLOURS)] for i in range(len(others))]
    shapes = [FUNNEL_FLAGS[f][1] for f in flags] + ["square"] * len(others)
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": limit_values},
            "transform": [
                {"fold": list(FUNNEL_LIMITS), "as": ["limit", "limit_value"]},
                {"calculate": "indexof(datum.limit, '998') >= 0 ? '99.8%' : '95%'", "as": "level"},
            ],
            "mark": {"type": "line", "strokeWidth": 1.5, "color": REFERENCE_COLOUR, "invalid": "break-paths-filter-domains"},
            "encoding": {
                "x": {"field": x, "type": "quantitative", **x_axis},
                "y": {"field": "limit_value", "type": "quantitative", "title": y_title},
                "detail": {"field": "limit", "type": "nominal"},
                "strokeDash": {"field": "level", "type": "nominal", "title": "Control limits",
                               "scale": {"domain": ["95%", "99.8%"], "range": [[5, 4], [1, 0]]}, "legend": {"orient": "bottom"}},
            },
        },
    ]
    if target is not None:
        layers.append(_reference_rule("y", target, target_label))
    layers.append({
        "data": {"values": point_values},
        "transform": [_valid(x), _valid(y)],
        "mark": {"type": "point", "filled": True, "size": 80, "opacity": 0.9},
        "encoding": {
            "x": {"field": x, "type": "quantitative", **x_axis},
            "y": {"field": y, "type": "quantitative", "title": y_title},
            "color": {"field": flag, "type": "nominal", "title": "Against the target",
                      "scale": {"domain": domain, "range": colours}, "legend": {"orient": "bottom"}},
            "shape": {"field": flag, "type": "nominal", "scale": {"domain": domain, "range": shapes}},
            "tooltip": _tooltip(label, x, y, flag),
        },
    })
    if not domain:  # no unit carries a flag: let Vega-Lite pick (an empty domain would draw nothing)
        for channel in ("color", "shape"):
            layers[-1]["encoding"][channel].pop("scale")
    spec = _base(title, description, None)
    spec.pop("data")
    return {**spec, "height": 320, "layer": layers}


def spec_json(spec: Mapping[str, Any]) -> str:
    """The spec as JSON that is safe inside `<script type="application/json">…</script>`.

    "<", ">" and "&" are written as \\u003c, \\u003e and \\u0026 (still the same JSON), so data
    holding "</script>" or "<!--" cannot end the block or change how the HTML parser reads it.
    Mark the result safe in Jinja; it must not be HTML-escaped (JSON.parse would see &lt;).
    """
    text = json.dumps(spec, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    # U+2028 and U+2029 are legal in JSON; escape them anyway so the text is also valid JavaScript.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# --- Pieces ----------------------------------------------------------------------------------


def _base(title: str, description: str, values: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not title or not description:
        raise ValueError("a chart needs a title and a description (its accessible name)")
    return {"$schema": SCHEMA, "title": title, "description": description, "width": "container",
            "data": {"values": values}}


def _valid(field: str) -> dict[str, str]:
    """Keep only rows whose `field` holds a value (Vega's isValid: not null, undefined or NaN)."""
    return {"filter": f"isValid(datum[{json.dumps(field)}])"}


def _reference_rule(channel: str, value: float, label: str) -> dict[str, Any]:
    """A dashed rule at `value` across the plot, with its own one-row data."""
    return {
        "data": {"values": [{"reference_value": _clean(value)}]},
        "mark": {"type": "rule", "strokeDash": [6, 4], "strokeWidth": 1.5, "color": REFERENCE_COLOUR},
        "encoding": {
            channel: {"field": "reference_value", "type": "quantitative"},
            "tooltip": [{"field": "reference_value", "type": "quantitative", "title": label}],
        },
    }


def _tooltip(*fields: str | None) -> list[dict[str, str]]:
    return [{"field": field} for field in fields if field is not None]


def _check_fields(*fields: str | None) -> None:
    for field in fields:
        if field is not None and (not field or _UNSAFE_FIELD_CHARACTERS & set(field)):
            raise ValueError(f"field name {field!r} must be non-empty and hold no '.', '[', ']' or '\\'")


def _values(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the rows with JSON-ready values: dates as ISO text, Decimals as floats, NaN as None."""
    return [{str(key): _clean(value) for key, value in row.items()} for row in rows]


def _clean(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a numpy scalar
        return _clean(value.item())
    return value


def _distinct(values: list[dict[str, Any]], field: str) -> list[Any]:
    """The field's values in first-seen order (None left out)."""
    seen: dict[Any, None] = {}
    for row in values:
        value = row.get(field)
        if value is not None:
            seen.setdefault(value, None)
    return list(seen)


def _json_default(value: Any) -> Any:
    cleaned = _clean(value)
    if cleaned is value:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return cleaned
