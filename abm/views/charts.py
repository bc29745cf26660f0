"""SVG chart builders for the insights report: pure functions from JSON-able data to inline SVG markup.

Stdlib only, no JavaScript: each mark carries an SVG `<title>` (the browser's native tooltip) and a stable class, so
a test can count what rendered:

- `bar`: a bar of a horizontal bar chart (account KPIs, journey tiles) or of a histogram, one per POSITIVE value (a
  zero shows only its "0" label; a positive value is at least 1 px wide, so it is always visible);
- `cell` / `avg-cell`: a cohort heat-map cell / a cell of its average row, one per cell in the data;
- `node` / `link`: a flow column item / a band between items of consecutive columns, one per positive count.

Every data string is escaped with `html.escape`; coordinates are rounded to 2 decimals and nothing depends on the
clock or on hash order, so identical input gives identical bytes. A builder returns "" when it has nothing to draw.
"""

from __future__ import annotations

import html
import math
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "KPIS",
    "Bar",
    "BarGroup",
    "as_list",
    "as_mapping",
    "band_path",
    "bar_chart",
    "esc",
    "fmt_number",
    "fmt_percent",
    "heat_opacity",
    "heatmap",
    "histogram",
    "journey_bars",
    "kpi_bars",
    "kpi_top",
    "number",
    "percent",
    "sankey",
]

# The engagement KPIs an account chart shows, in order: key in the account's "kpis", and its label.
KPIS: tuple[tuple[str, str], ...] = (
    ("emails_opened", "Emails opened"),
    ("emails_clicked", "Emails clicked"),
    ("website_visits", "Website visits"),
    ("form_submissions", "Form submissions"),
    ("event_registrations", "Event registrations"),
    ("other_interactions", "Other interactions"),
    ("leads", "Leads"),
    ("opportunities_open", "Open opportunities"),
    ("opportunities_won", "Won opportunities"),
)
# Categorical colours, readable on white; a label keeps its colour everywhere (see colour_for).
PALETTE = ("#2563eb", "#0891b2", "#7c3aed", "#db2777", "#ea580c", "#ca8a04", "#059669", "#4f46e5", "#0d9488")
COUNTER_COLOURS = {"entered": "#2563eb", "true": "#16a34a", "false": "#9ca3af"}
RETENTION, CHURN, MISSING = "#15803d", "#b91c1c", "#e5e7eb"  # heat-map hues as in Adobe CJA; no percent: grey


# --- shared helpers: escaping, numbers, scales, colours, elements -------------------------------------------------


def esc(value: object) -> str:
    """Text or attribute value safe inside HTML/SVG markup (quotes included)."""
    return html.escape(str(value), quote=True)


def percent(value: object) -> float | None:
    """A finite number from JSON data, else None (None, text, bool, NaN): a cell's percent when its base is not 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def number(value: object) -> float:
    """A finite number from JSON data; anything else counts as 0, so odd data never breaks a chart."""
    return percent(value) or 0.0


def fmt_number(value: float) -> str:
    """A count with thousands separators; a fraction keeps one decimal."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_percent(value: float | None) -> str:
    """A percent with one decimal at most, or an en dash when there is none."""
    return "\u2013" if value is None else f"{fmt_number(round(value, 1))}%"


def _px(value: float) -> str:
    """A coordinate rounded to 2 decimals, without trailing zeros (stable text for identical input)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _scale(value: float, top: float, length: float) -> float:
    """`value` on a linear scale where `top` maps to `length` (0 when there is no top)."""
    return value / top * length if top > 0 else 0.0


def _clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis (the full text stays in the tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def colour_for(label: str) -> str:
    """A palette colour chosen by the label's CRC (stable across runs, unlike `hash`)."""
    return COUNTER_COLOURS.get(label) or PALETTE[zlib.crc32(label.encode()) % len(PALETTE)]


def heat_opacity(value: float | None) -> float:
    """Fill opacity of a heat-map cell: 0.08 at 0 % to 1 at 100 %, so a higher percent is a stronger colour."""
    share = min(max((value or 0.0) / 100, 0.0), 1.0)
    return round(0.08 + 0.92 * share, 3)


def _attr(value: object) -> str:
    return _px(value) if isinstance(value, float) else esc(value)


def _el(tag: str, attrs: Mapping[str, object], content: str = "") -> str:
    """An element; attribute values are escaped (None leaves one out), `content` is markup already escaped."""
    rendered = "".join(f' {name}="{_attr(value)}"' for name, value in attrs.items() if value is not None)
    return f"<{tag}{rendered}>{content}</{tag}>"


def _mark(tag: str, cls: str, attrs: Mapping[str, object], tip: str) -> str:
    """A countable mark with its class and a native tooltip."""
    return _el(tag, {"class": cls, **attrs}, _el("title", {}, esc(tip)))


def _text(x: float, y: float, content: str, cls: str | None = None, anchor: str | None = None) -> str:
    """A label vertically centred on `y`."""
    return _el(
        "text", {"x": float(x), "y": float(y), "dy": "0.35em", "class": cls, "text-anchor": anchor}, esc(content)
    )


def _line(x1: float, y1: float, x2: float, y2: float) -> str:
    return _el("line", {"class": "axis", "x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2)})


def _svg(width: float, height: float, body: str, label: str) -> str:
    """The chart's root: fixed view box, scales down to the page width (CSS), described for screen readers."""
    box = f"0 0 {_px(width)} {_px(height)}"
    attrs = {"class": "chart", "viewBox": box, "width": float(width), "height": float(height), "role": "img"}
    return _el("svg", {**attrs, "aria-label": label}, body)


# --- horizontal bar charts: account KPIs, journey tiles ------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar: its row label, value, colour and tooltip."""

    label: str
    value: float
    colour: str
    tip: str


@dataclass(frozen=True)
class BarGroup:
    """Rows under an optional heading (a journey tile; "" for none)."""

    heading: str
    bars: tuple[Bar, ...]


BAR_LABEL_W, BAR_PLOT_W, BAR_VALUE_W = 150.0, 330.0, 70.0
BAR_ROW, BAR_H, BAR_HEAD = 20.0, 14.0, 22.0


def bar_chart(groups: Sequence[BarGroup], top: float, label: str) -> str:
    """Horizontal bars on one scale (`top` fills the plot), the value as text after each bar."""
    parts: list[str] = []
    y = 4.0
    for group in groups:
        if group.heading:
            parts.append(_text(0, y + BAR_HEAD / 2, _clip(group.heading, 70), "group"))
            y += BAR_HEAD
        for bar in group.bars:
            middle = y + BAR_ROW / 2
            parts.append(_text(BAR_LABEL_W - 8, middle, _clip(bar.label, 22), "label", "end"))
            width = max(_scale(bar.value, top, BAR_PLOT_W), 1.0) if bar.value > 0 else 0.0
            if bar.value > 0:
                box = {"x": BAR_LABEL_W, "y": y + (BAR_ROW - BAR_H) / 2, "width": width, "height": BAR_H}
                parts.append(_mark("rect", "bar", {**box, "fill": bar.colour}, bar.tip))
            parts.append(_text(BAR_LABEL_W + width + 6, middle, fmt_number(bar.value), "value"))
            y += BAR_ROW
    if not parts:
        return ""
    parts.append(_line(BAR_LABEL_W, 4, BAR_LABEL_W, y))
    return _svg(BAR_LABEL_W + BAR_PLOT_W + BAR_VALUE_W, y + 4, "".join(parts), label)


def kpi_top(accounts: Sequence[Mapping[str, Any]]) -> float:
    """The largest KPI value of these accounts: one scale for all their charts, so bars compare across accounts."""
    return max((number(as_mapping(a.get("kpis")).get(key)) for a in accounts for key, _ in KPIS), default=0.0)


def kpi_bars(kpis: Mapping[str, Any], top: float, account: str) -> str:
    """One account's engagement KPIs, leads and opportunities as bars (a missing KPI counts as 0)."""
    bars = []
    for index, (key, label) in enumerate(KPIS):
        value = number(kpis.get(key))
        bars.append(Bar(label, value, PALETTE[index % len(PALETTE)], f"{account}: {label} {fmt_number(value)}"))
    return bar_chart([BarGroup("", tuple(bars))], top, f"Engagement KPIs of {account}")


def journey_bars(journey: str, tiles: Sequence[Mapping[str, Any]]) -> str:
    """A journey's tiles, one group each: a bar per counter, "entered" first (0 when missing), then the others."""
    groups = []
    for tile in tiles:
        tile_id, kind = str(tile.get("id") or "?"), str(tile.get("kind") or "tile")
        counts = as_mapping(tile.get("counts"))
        names = ["entered", *(str(name) for name in counts if name != "entered")]
        values = {name: number(counts.get(name)) for name in names}
        where = f"{journey} \u203a {tile_id} ({kind})"
        bars = tuple(Bar(n, v, colour_for(n), f"{where}: {n} {fmt_number(v)}") for n, v in values.items())
        groups.append(BarGroup(f"{tile_id} ({kind})", bars))
    top = max((bar.value for group in groups for bar in group.bars), default=0.0)
    return bar_chart(groups, top, f"Tile counts of journey {journey}")


# --- histogram: a scoring model's score distribution ----------------------------------------------------------------

HIST_LEFT, HIST_PLOT_W, HIST_PLOT_H, HIST_TOP, HIST_BOTTOM = 8.0, 480.0, 140.0, 18.0, 24.0
HIST_MAX_LABELS = 12


def histogram(bins: Sequence[Mapping[str, Any]], model: str) -> str:
    """Vertical bars per score bin (equal widths, in data order), counts above, bin edges below."""
    if not bins:
        return ""
    width = HIST_PLOT_W / len(bins)
    gap = min(2.0, width * 0.2)
    top = max(number(b.get("count")) for b in bins)
    base = HIST_TOP + HIST_PLOT_H
    step = math.ceil(len(bins) / HIST_MAX_LABELS)
    parts: list[str] = []
    for index, b in enumerate(bins):
        count, x = number(b.get("count")), HIST_LEFT + index * width
        low, high = fmt_number(number(b.get("from"))), fmt_number(number(b.get("to")))
        if count > 0:
            height = max(_scale(count, top, HIST_PLOT_H), 1.0)
            box = {"x": x + gap / 2, "y": base - height, "width": width - gap, "height": height}
            parts.append(
                _mark("rect", "bar", {**box, "fill": PALETTE[0]}, f"{model}: {low}\u2013{high}: {fmt_number(count)}")
            )
        if step == 1:
            parts.append(
                _text(x + width / 2, base - _scale(count, top, HIST_PLOT_H) - 8, fmt_number(count), "value", "middle")
            )
        if index % step == 0:
            parts.append(_text(x, base + 12, low, "muted", "middle"))
    parts.append(_text(HIST_LEFT + HIST_PLOT_W, base + 12, fmt_number(number(bins[-1].get("to"))), "muted", "middle"))
    parts.append(_line(HIST_LEFT, base, HIST_LEFT + HIST_PLOT_W, base))
    return _svg(HIST_LEFT * 3 + HIST_PLOT_W, base + HIST_BOTTOM, "".join(parts), f"Score distribution of {model}")


# --- heat map: a cohort table ---------------------------------------------------------------------------------------

HEAT_LABEL_W, HEAT_CELL_W, HEAT_CELL_H, HEAT_GAP, HEAT_HEAD = 160.0, 68.0, 28.0, 2.0, 24.0


@dataclass(frozen=True)
class _HeatGrid:
    """Where a heat map's offsets go (x by offset), its hue and its period unit ("Month")."""

    x: Mapping[int, float]
    hue: str
    unit: str

    def cells(self, cls: str, y: float, cells: Sequence[Mapping[str, Any]], row: str) -> list[str]:
        """A row's cells, each with its percent as text and the counts in its tooltip."""
        return [self.cell(cls, y, cell, row) for cell in cells]

    def cell(self, cls: str, y: float, cell: Mapping[str, Any], row: str) -> str:
        """One cell: the stronger the colour, the higher the percent; no percent is grey."""
        offset, value = int(number(cell.get("offset"))), percent(cell.get("percent"))
        opacity = heat_opacity(value) if value is not None else 1.0
        box = {"x": self.x[offset], "y": y, "width": HEAT_CELL_W, "height": HEAT_CELL_H, "rx": 3.0}
        paint = {"fill": self.hue if value is not None else MISSING, "fill-opacity": opacity}
        where = f"{row}, {self.unit.lower()} {offset}" + (f" ({cell['period']})" if cell.get("period") else "")
        counts = f" ({fmt_number(number(cell.get('count')))} of {fmt_number(number(cell.get('base')))})"
        tip = f"{where}: {fmt_percent(value)}{counts if 'base' in cell else ''}"
        ink = "on-dark" if value is not None and opacity > 0.55 else "value"
        middle = (self.x[offset] + HEAT_CELL_W / 2, y + HEAT_CELL_H / 2)
        return _mark("rect", cls, {**box, **paint}, tip) + _text(*middle, fmt_percent(value), ink, "middle")


def heatmap(cohort: Mapping[str, Any]) -> str:
    """One row per cohort (label and included count), one cell per computed cell, coloured by percent (green for
    retention, red for churn), then the average row; a cohort with no one included is greyed out."""
    rows = [as_mapping(row) for row in as_list(cohort.get("cohorts"))]
    if not rows:
        return ""
    average = [as_mapping(cell) for cell in as_list(cohort.get("average"))]
    cells_of = [[as_mapping(cell) for cell in as_list(row.get("cells"))] for row in rows]
    offsets = sorted({int(number(c.get("offset"))) for cells in [*cells_of, average] for c in cells})
    grid = _HeatGrid(
        x={offset: HEAT_LABEL_W + i * (HEAT_CELL_W + HEAT_GAP) for i, offset in enumerate(offsets)},
        hue=CHURN if cohort.get("type") == "churn" else RETENTION,
        unit=str(cohort.get("granularity") or "period").capitalize(),
    )
    parts = [
        _text(0, HEAT_HEAD / 2, "Cohort", "muted"),
        _text(HEAT_LABEL_W - 10, HEAT_HEAD / 2, "Included", "muted", "end"),
    ]
    parts += [
        _text(x + HEAT_CELL_W / 2, HEAT_HEAD / 2, f"{grid.unit} {o}", "muted", "middle") for o, x in grid.x.items()
    ]
    y = HEAT_HEAD
    for row, cells in zip(rows, cells_of, strict=True):
        included, label = number(row.get("included")), str(row.get("label") or row.get("period") or "?")
        heading = _text(0, y + HEAT_CELL_H / 2, _clip(label, 16))
        heading += _text(HEAT_LABEL_W - 10, y + HEAT_CELL_H / 2, fmt_number(included), "value", "end")
        marks = "".join(grid.cells("cell", y, cells, label))
        parts.append(_el("g", {"class": "row" if included > 0 else "row row-empty"}, heading + marks))
        y += HEAT_CELL_H + HEAT_GAP
    if average:
        y += 6
        parts += [_text(0, y + HEAT_CELL_H / 2, "Average", "group"), *grid.cells("avg-cell", y, average, "Average")]
        y += HEAT_CELL_H
    width = HEAT_LABEL_W + len(offsets) * (HEAT_CELL_W + HEAT_GAP)
    return _svg(width, y + 4, "".join(parts), f"Cohort table ({cohort.get('type') or 'retention'})")


# --- Sankey: a flow --------------------------------------------------------------------------------------------------

FLOW_W, FLOW_NODE_W, FLOW_GAP, FLOW_MARGIN = 860.0, 14.0, 12.0, 4.0
FLOW_TOP, FLOW_PLOT_H, FLOW_BOTTOM = 30.0, 300.0, 30.0


@dataclass(frozen=True)
class _Node:
    """A placed flow item: its column, label, count, and where its rectangle is."""

    column: int
    label: str
    count: float
    y: float
    height: float


@dataclass(frozen=True)
class _Link:
    """A band between two placed items: `width` is its count on the nodes' scale, `y0` / `y1` where its top edge
    meets the source / the target."""

    source: _Node
    target: _Node
    count: float
    width: float
    y0: float = 0.0
    y1: float = 0.0


def sankey(flow: Mapping[str, Any]) -> str:
    """Columns of items (height proportional to count, one scale for all) and links between consecutive columns as
    filled cubic-Bezier bands as wide as their count on that scale; entries (or exits) under each column."""
    nodes_data = [as_mapping(n) for n in as_list(flow.get("nodes"))]
    items = [n for n in nodes_data if number(n.get("count")) > 0 and number(n.get("column")) >= 0]
    if not items:
        return ""
    columns = max(int(number(flow.get("columns"))), *(int(number(n.get("column"))) + 1 for n in items))
    by_column: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for item in items:
        by_column[int(number(item.get("column")))].append(item)
    k = min(
        (FLOW_PLOT_H - FLOW_GAP * (len(c) - 1)) / sum(number(n.get("count")) for n in c) for c in by_column.values()
    )
    nodes = {key: node for column, col in sorted(by_column.items()) for key, node in _stack(column, col, k).items()}
    x = {c: FLOW_MARGIN + c * (FLOW_W - 2 * FLOW_MARGIN - FLOW_NODE_W) / max(columns - 1, 1) for c in range(columns)}
    parts = [_text(x[c] + FLOW_NODE_W / 2, FLOW_TOP / 2, f"Step {c + 1}", "muted", _anchor(c, columns)) for c in x]
    parts += [_band(link, x) for link in _links(flow, nodes, k)]
    for node in nodes.values():
        box = {"x": x[node.column], "y": node.y, "width": FLOW_NODE_W, "height": node.height}
        tip = f"Step {node.column + 1}: {node.label} ({fmt_number(node.count)})"
        parts.append(_mark("rect", "node", {**box, "fill": colour_for(node.label)}, tip))
    parts += [_node_label(node, x[node.column], columns) for node in nodes.values()]
    parts += _ends(flow, x, columns)
    return _svg(FLOW_W, FLOW_TOP + FLOW_PLOT_H + FLOW_BOTTOM, "".join(parts), "Flow")


def _stack(column: int, items: Sequence[Mapping[str, Any]], k: float) -> dict[tuple[int, str], _Node]:
    """A column's items stacked in data order, centred vertically, heights `count * k` (at least 1 px)."""
    heights = [max(number(n.get("count")) * k, 1.0) for n in items]
    y = FLOW_TOP + (FLOW_PLOT_H - sum(heights) - FLOW_GAP * (len(items) - 1)) / 2
    placed = {}
    for item, height in zip(items, heights, strict=True):
        label = str(item.get("label"))
        placed[column, label] = _Node(column, label, number(item.get("count")), y, height)
        y += height + FLOW_GAP
    return placed


def _links(flow: Mapping[str, Any], nodes: Mapping[tuple[int, str], _Node], k: float) -> list[_Link]:
    """The flow's links between items it has, in data order (a link to an unknown item is left out), each stacked
    in its source and in its target by the position of its other end, so bands cross as little as they can."""
    links = []
    for raw in as_list(flow.get("links")):
        link = as_mapping(raw)
        source, target, count = (
            _endpoint(link.get("from"), nodes),
            _endpoint(link.get("to"), nodes),
            number(link.get("count")),
        )
        if source and target and count > 0:
            links.append(_Link(source, target, count, count * k))
    starts, ends = _offsets(links, outgoing=True), _offsets(links, outgoing=False)
    return [replace(link, y0=y0, y1=y1) for link, y0, y1 in zip(links, starts, ends, strict=True)]


def _offsets(links: Sequence[_Link], *, outgoing: bool) -> list[float]:
    """Where each band meets its source (outgoing) or its target: stacked down that node from its top."""

    def ends(link: _Link) -> tuple[_Node, _Node]:
        return (link.source, link.target) if outgoing else (link.target, link.source)

    order = sorted(range(len(links)), key=lambda i: (ends(links[i])[0].y, ends(links[i])[1].y, i))
    used: dict[_Node, float] = defaultdict(float)
    at = [0.0] * len(links)
    for i in order:
        node = ends(links[i])[0]
        at[i] = node.y + used[node]
        used[node] += links[i].width
    return at


def _endpoint(raw: object, nodes: Mapping[tuple[int, str], _Node]) -> _Node | None:
    end = as_mapping(raw)
    return nodes.get((int(number(end.get("column"))), str(end.get("label"))))


def _band(link: _Link, x: Mapping[int, float]) -> str:
    """A link's band from the right edge of its source to the left edge of its target."""
    path = band_path(x[link.source.column] + FLOW_NODE_W, link.y0, x[link.target.column], link.y1, link.width)
    tip = f"{link.source.label} \u2192 {link.target.label}: {fmt_number(link.count)}"
    return _mark("path", "link", {"d": path, "fill": colour_for(link.source.label)}, tip)


def band_path(x0: float, y0: float, x1: float, y1: float, width: float) -> str:
    """A band from (x0, y0) to (x1, y1), `width` thick: two cubic Beziers with horizontal tangents, closed."""
    xm = (x0 + x1) / 2
    top = f"M{_px(x0)},{_px(y0)}C{_px(xm)},{_px(y0)} {_px(xm)},{_px(y1)} {_px(x1)},{_px(y1)}"
    b0, b1 = y0 + width, y1 + width
    return f"{top}L{_px(x1)},{_px(b1)}C{_px(xm)},{_px(b1)} {_px(xm)},{_px(b0)} {_px(x0)},{_px(b0)}Z"


def _anchor(column: int, columns: int) -> str:
    """Text anchor for a column's labels: left of the node in the last column, right of it elsewhere."""
    return "end" if column == columns - 1 and columns > 1 else "start"


def _node_label(node: _Node, x: float, columns: int) -> str:
    """An item's label and count beside its rectangle, with a white halo over the bands."""
    anchor = _anchor(node.column, columns)
    at = x - 4 if anchor == "end" else x + FLOW_NODE_W + 4
    label = f"{_clip(node.label, 26)} \u00b7 {fmt_number(node.count)}"
    return _text(at, node.y + node.height / 2, label, "halo", anchor)


def _ends(flow: Mapping[str, Any], x: Mapping[int, float], columns: int) -> list[str]:
    """Under each column, how many paths enter there (ends_with anchor) or exit there (starts_with anchor)."""
    key, verb = ("exits", "exit") if "exits" in flow else ("entries", "enter")
    counts = [number(v) for v in as_list(flow.get(key))]
    base = FLOW_TOP + FLOW_PLOT_H + FLOW_BOTTOM / 2
    return [
        _text(x[c] + FLOW_NODE_W / 2, base, f"{fmt_number(n)} {verb} here", "muted", _anchor(c, columns))
        for c, n in enumerate(counts[:columns])
    ]


# --- tolerant access to JSON-able data -------------------------------------------------------------------------------


def as_mapping(value: object) -> Mapping[str, Any]:
    """`value` if it is a mapping, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: object) -> Sequence[Any]:
    """`value` if it is a list or tuple, else an empty one."""
    return value if isinstance(value, list | tuple) else ()
