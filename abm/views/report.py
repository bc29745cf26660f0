"""The insights report: one self-contained HTML page (inline CSS and SVG, no script, nothing to load) rendered from
the JSON-able insights dict, so it opens offline, mails as one file and prints.

Sections, each a `<section id=...>` with an `<h2>` and a short "no data" note when it has nothing to show:
`kpis` (account KPI bars), `cohort` (heat map), `flow` (Sankey), `scores` (histogram per model and grade counts),
`journeys` (tile counters). The charts come from `abm.views.charts`; this module lays out the page and writes it.
Output depends only on the input (the `now` shown is the data's), so the same data gives the same bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from abm.views.charts import (
    as_list,
    as_mapping,
    esc,
    fmt_number,
    heatmap,
    histogram,
    journey_bars,
    kpi_bars,
    kpi_top,
    number,
    sankey,
)

__all__ = ["ACCOUNT_LIMIT", "SECTIONS", "render_report", "write_report"]

DOT = " \u00b7 "  # between the parts of a meta line
ACCOUNT_LIMIT = 10  # accounts shown in the KPI section; the page says how many more there were

CSS = """
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
header{padding:20px 32px 12px;background:#fff;border-bottom:1px solid var(--line)}
h1{margin:0 0 2px;font-size:24px}
h2{margin:0 0 4px;font-size:18px}
h3{margin:0;font-size:15px}
nav{margin-top:8px;display:flex;gap:16px;flex-wrap:wrap}
nav a{color:#2563eb;text-decoration:none}
main{max-width:1120px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:16px 0}
figure{margin:0;padding:12px 0}
figure+figure{border-top:1px solid var(--line)}
.grid figure{border:none}
figcaption{display:flex;gap:4px 12px;flex-wrap:wrap;align-items:baseline}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:0 24px}
.meta,.muted{color:var(--muted)}
.nodata{color:var(--muted);font-style:italic;margin:8px 0}
.badge{display:inline-block;padding:0 8px;border-radius:10px;background:#eef2ff;color:#3730a3;font-weight:600}
.grades{list-style:none;padding:0;margin:6px 0 0;display:flex;gap:8px;flex-wrap:wrap}
.grades li{border:1px solid var(--line);border-radius:10px;padding:0 10px}
svg.chart{display:block;max-width:100%;height:auto;margin-top:6px}
svg.chart text{font-size:12px;fill:var(--ink)}
svg.chart text.muted{fill:var(--muted)}
svg.chart text.group{font-weight:600}
svg.chart text.value{font-variant-numeric:tabular-nums}
svg.chart text.on-dark{fill:#fff;font-variant-numeric:tabular-nums}
svg.chart .halo{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg.chart .axis{stroke:#9ca3af}
svg.chart .link{fill-opacity:.35}
svg.chart .link:hover{fill-opacity:.6}
svg.chart .bar:hover,svg.chart .node:hover{opacity:.8}
svg.chart .row-empty{opacity:.45}
@media print{
body{background:#fff}
nav{display:none}
main{max-width:none;padding:0}
section{break-inside:avoid;border:none;padding:0;margin:12px 0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
""".strip()
# Nothing may load: no script, no network, only the inline style and the page's own SVG.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_report(data: Mapping[str, Any]) -> str:
    """The whole page for `data` (see the module docstring for its sections); missing sections show a note."""
    title = str(data.get("title") or "ABM insights")
    sections = "".join(_section(sid, heading, build(data.get(key))) for sid, key, heading, build in SECTIONS)
    nav = "".join(f'<a href="#{sid}">{esc(heading)}</a>' for sid, _, heading, _ in SECTIONS)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body><header><h1>{esc(title)}</h1>{_header_meta(data)}<nav>{nav}</nav></header>\n"
        f"<main>{sections}</main></body></html>\n"
    )


def write_report(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Render `data` to `path` atomically (creating its directory): written to a temporary file in the same
    directory, then moved over the target, so a reader never sees half a report and a failure leaves the previous
    one. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(data)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(page)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# --- page parts ------------------------------------------------------------------------------------------------------


def _section(sid: str, heading: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(heading)}</h2>{body}</section>\n'


def _note(text: str) -> str:
    """The short note a section (or a figure) shows instead of an empty chart."""
    return f'<p class="nodata">{esc(text)}</p>'


def _meta(*parts: str) -> str:
    """A muted line of already-escaped parts, the empty ones left out."""
    shown = [part for part in parts if part]
    return f'<p class="meta">{DOT.join(shown)}</p>' if shown else ""


def _when(value: object) -> str:
    """A timestamp as a `<time>`: ISO 8601 shown as "2026-11-23 00:00 UTC"; anything else shown as it is."""
    if not value:
        return ""
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return f"<time>{esc(text)}</time>"
    offset = moment.utcoffset()
    zone = "" if offset is None else "UTC" if not offset else moment.strftime("%z")
    shown = f"{moment:%Y-%m-%d %H:%M} {zone}".strip()
    return f'<time datetime="{esc(text)}">{esc(shown)}</time>'


def _span(value: object) -> str:
    """A {"from", "to"} range as "from to to", with an en dash ("" when there is none)."""
    span = as_mapping(value)
    if not span.get("from") and not span.get("to"):
        return ""
    start, end = _when(span.get("from")) or "\u2026", _when(span.get("to")) or "\u2026"
    return f"{start} \u2013 {end}"


def _header_meta(data: Mapping[str, Any]) -> str:
    now, span = _when(data.get("now")), _span(data.get("range"))
    return _meta(f"As of {now}" if now else "", f"Range {span}" if span else "")


def _count(value: object, noun: str) -> str:
    """ "1,234 contacts" ("" when the value is missing)."""
    return f"{fmt_number(number(value))} {esc(noun)}" if value is not None else ""


# --- sections --------------------------------------------------------------------------------------------------------


def _accounts(value: object) -> str:
    """Per account (at most ACCOUNT_LIMIT), its name, best score and grade per model, and its KPI bars on a shared
    scale."""
    accounts = [as_mapping(a) for a in as_list(value)]
    if not accounts:
        return _note("No accounts in this report.")
    shown = accounts[:ACCOUNT_LIMIT]
    top = kpi_top(shown)
    figures = "".join(_account(account, top) for account in shown)
    more = _note(f"Showing {len(shown)} of {len(accounts):,} accounts.") if len(accounts) > len(shown) else ""
    return f'<div class="grid">{figures}</div>{_meta("The bars share one scale across accounts.")}{more}'


def _account(entry: Mapping[str, Any], top: float) -> str:
    identity = as_mapping(entry.get("account"))
    name = str(identity.get("name") or identity.get("id") or "(unnamed account)")
    best = as_mapping(entry.get("best_scores"))
    scores = "".join(_best(str(model), as_mapping(best[model])) for model in sorted(best, key=str))
    kpis = as_mapping(entry.get("kpis"))
    sent = _count(kpis.get("emails_sent"), "emails sent")
    caption = f'<figcaption><h3 class="account-name">{esc(name)}</h3>{scores}</figcaption>'
    meta = _meta(_count(entry.get("contacts"), "contacts"), sent)
    return f'<figure class="account">{caption}{meta}{kpi_bars(kpis, top, name)}</figure>'


def _best(model: str, best: Mapping[str, Any]) -> str:
    """One model's best current score of the account's open leads, with its grade, as a badge."""
    grade = f" ({esc(best['grade'])})" if best.get("grade") else ""
    tip = esc(f"best current score of the account's open leads by {model}")
    score = fmt_number(number(best.get("score")))
    return f'<span class="badge best-score" title="{tip}">{esc(model)} {score}{grade}</span>'


def _cohort(value: object) -> str:
    """The cohort table's settings in words, then its heat map."""
    cohort = as_mapping(value)
    chart = heatmap(cohort)
    if not chart:
        return _note("No cohorts in this range.")
    kind = str(cohort.get("type") or "retention")
    unit, container = esc(cohort.get("granularity") or "period"), esc(cohort.get("container") or "account")
    how = f"{esc(kind.capitalize())} by {unit}, per {container}"
    rolling = "rolling" if cohort.get("rolling") else ""
    criteria = (
        f"included: {_criteria(cohort.get('inclusion'))}",
        f"returning: {_criteria(cohort.get('return'))}",
    )
    colour = "darker red: more churn" if kind == "churn" else "darker green: more retained"
    return _meta(how, rolling, *criteria, _span(cohort.get("range"))) + chart + _meta(colour)


def _criteria(value: object) -> str:
    """ "OpportunityCreated ≥ 1 and OpportunityWon ≥ 2" from a {"match", "metrics"} dict."""
    criteria = as_mapping(value)
    tests = [as_mapping(t) for t in as_list(criteria.get("metrics"))]
    joiner = " or " if criteria.get("match") == "any" else " and "
    return joiner.join(f"{esc(t.get('metric'))} \u2265 {fmt_number(number(t.get('at_least')))}" for t in tests) or "-"


def _flow(value: object) -> str:
    """The flow's settings in words, then its Sankey diagram."""
    flow = as_mapping(value)
    chart = sankey(flow) if number(flow.get("paths")) > 0 else ""
    if not chart:
        return _note("No paths reach the anchor in this range.")
    anchor = as_mapping(flow.get("anchor"))
    end = "starting with" if "starts_with" in anchor else "ending with"
    anchored = esc(anchor.get("starts_with") or anchor.get("ends_with") or "?")
    paths = f"{_count(flow.get('paths'), str(flow.get('container') or 'account') + ' paths')} {end} {anchored}"
    by = f"by {esc(flow.get('dimension') or 'type')}"
    repeats = "repeats kept" if flow.get("repeats") else "repeats collapsed"
    ends = "exits: paths that end at a step" if "exits" in flow else "entries: paths that begin at a step"
    return _meta(paths, by, repeats, _span(flow.get("range"))) + chart + _meta(ends)


def _scores(value: object) -> str:
    """Per scoring model (by name): how many it scored, its score histogram and its grade counts."""
    models = as_mapping(as_mapping(value).get("models"))
    if not models:
        return _note("No scoring models in this report.")
    return "".join(_model(str(name), as_mapping(models[name])) for name in sorted(models))


def _model(name: str, model: Mapping[str, Any]) -> str:
    chart = histogram([as_mapping(b) for b in as_list(model.get("bins"))], name) or _note("No scores yet.")
    grades = as_mapping(model.get("grades"))
    items = "".join(f"<li><b>{esc(g)}</b> {fmt_number(number(grades[g]))}</li>" for g in sorted(grades, key=str))
    listed = f'<ul class="grades" aria-label="Grades">{items}</ul>' if items else ""
    meta = _meta(f"target {esc(model.get('target') or '?')}", _count(model.get("scored"), "scored"))
    return f'<figure class="model"><figcaption><h3>{esc(name)}</h3></figcaption>{meta}{chart}{listed}</figure>'


def _journeys(value: object) -> str:
    """Per journey, a bar per tile counter."""
    journeys = [as_mapping(j) for j in as_list(value)]
    if not journeys:
        return _note("No journeys in this report.")
    return "".join(_journey(journey) for journey in journeys)


def _journey(journey: Mapping[str, Any]) -> str:
    name = str(journey.get("journey") or "(unnamed journey)")
    tiles = [as_mapping(t) for t in as_list(journey.get("tiles"))]
    chart = journey_bars(name, tiles) or _note("No tiles.")
    account = f"account {esc(journey['account'])}" if journey.get("account") else ""
    meta = _meta(f"target {esc(journey.get('target') or '?')}", account)
    return f'<figure class="journey"><figcaption><h3>{esc(name)}</h3></figcaption>{meta}{chart}</figure>'


# The page's sections, in order: element id, key of the data it shows, heading, and what renders that data.
SECTIONS: tuple[tuple[str, str, str, Callable[[object], str]], ...] = (
    ("kpis", "accounts", "Accounts", _accounts),
    ("cohort", "cohort", "Cohort table", _cohort),
    ("flow", "flow", "Flow", _flow),
    ("scores", "scores", "Score distribution", _scores),
    ("journeys", "journeys", "Journeys", _journeys),
)
