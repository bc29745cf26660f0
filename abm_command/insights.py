"""`abm insights ...`: the insights endpoints from a shell, as tables for people or `--json` for scripts.

The options carry the query parameters' names and go through the same parser (`abm.views.params`), so the
command and the HTTP functions accept and reject the same values. The data is the configured state store's mirror
(the environment, overlaid by `--settings FILE`), or with `--db PATH` a demo database's (`abm demo --db PATH`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abm.bootstrap import build_setup, build_store
from abm.jobs.pipeline import RunSetup
from abm.settings import Settings, SettingsError, environment
from abm.views.insights import account_insights, cohorts, flows, journey_insights, paths, report_data
from abm.views.params import as_params, date_range
from abm.views.report import write_report
from statestore.port import StateStore

__all__ = ["add_command", "run"]

_RANGE_HELP = "YYYY-MM-DD (inclusive) or an ISO datetime; default: the twelve months up to now"


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `insights` with its analyses to the `abm` subparsers."""
    insights = commands.add_parser("insights", help="account KPIs, journey tiles, cohorts, flows, journey paths")
    analyses = insights.add_subparsers(dest="analysis", metavar="ANALYSIS", required=True)

    def analysis(name: str, help: str, *, dates: bool = True) -> argparse.ArgumentParser:
        parser = analyses.add_parser(name, help=help)
        parser.add_argument("--db", metavar="PATH", help="read a demo database (abm demo --db PATH)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        if dates:
            parser.add_argument("--from", dest="from", metavar="WHEN", help=_RANGE_HELP)
            parser.add_argument("--to", metavar="WHEN", help=_RANGE_HELP)
        return parser

    account = analysis("account", "one account's KPIs over a date range")
    account.add_argument("id", help="the account's id (a GUID)")
    journey = analysis("journey", "a journey's tile counts, for one account or all", dates=False)
    journey.add_argument("name", help="the journey's name")
    journey.add_argument("--account", metavar="ID", help="only this account's counts")

    cohort = analysis("cohorts", "a cohort table (retention or churn)")
    cohort.add_argument("--include", required=True, metavar="TESTS", help="e.g. OpportunityCreated>=1 (up to 3)")
    cohort.add_argument("--include-match", dest="include_match", choices=("all", "any"))
    cohort.add_argument("--return", dest="return", required=True, metavar="TESTS", help="e.g. OpportunityWon>=1")
    cohort.add_argument("--return-match", dest="return_match", choices=("all", "any"))
    cohort.add_argument("--granularity", choices=("day", "week", "month", "quarter", "year"))
    cohort.add_argument("--container", choices=("account", "contact", "opportunity"))
    cohort.add_argument("--type", choices=("retention", "churn"))
    cohort.add_argument("--rolling", action="store_true", help="each column against the previous one")

    flow = analysis("flows", "the paths that start or end with an event")
    anchor = flow.add_mutually_exclusive_group(required=True)
    anchor.add_argument("--starts-with", dest="starts_with", metavar="VALUE")
    anchor.add_argument("--ends-with", dest="ends_with", metavar="VALUE", help="e.g. MarketingQualified")
    flow.add_argument("--dimension", choices=("type", "content_type"))
    flow.add_argument("--occurrence", choices=("first", "last"), help="the anchor's occurrence (default first)")
    flow.add_argument("--repeats", action="store_true", help="keep repeated consecutive items")
    flow.add_argument("--columns", type=int, metavar="N", help="1 to 5 (default 5)")
    flow.add_argument("--limit", type=int, metavar="N", help="items per column, 1 to 10 (default 10)")
    flow.add_argument("--container", choices=("account", "contact"))

    path = analysis("paths", "conversion between steps with fallout; one account's own path")
    path.add_argument("--steps", required=True, metavar="TYPES", help="e.g. FormSubmitted,OpportunityCreated")
    path.add_argument("--account", metavar="ID", help="also show this account's path")
    path.add_argument("--percent", choices=("start", "previous"))
    path.add_argument("--container", choices=("account", "contact"))

    report = analysis("report", "write the HTML report (KPIs, cohorts, flow, scores, journeys)", dates=False)
    report.add_argument("--out", default="abm-report.html", metavar="FILE", help="default abm-report.html")
    report.add_argument("--to", metavar="WHEN", help="the end of the twelve months shown (default: now)")


_COMMON = ("command", "analysis", "db", "json", "settings", "verbose", "id", "name", "out")


def _params(args: argparse.Namespace) -> dict[str, str]:
    return as_params({k: v for k, v in vars(args).items() if k not in _COMMON})


def _sources(args: argparse.Namespace) -> tuple[StateStore, RunSetup]:
    if args.db:
        if not Path(f"{args.db}.state").is_file():
            raise SettingsError(f"--db {args.db}: no state store {args.db}.state (run abm demo --db {args.db} first)")
        demo = Settings.from_env({"ABM_SQLITE_PATH": f"{args.db}.state"})  # the demo's store and definitions
        return build_store(demo), build_setup(demo)
    settings = Settings.from_env(environment(args.settings))
    return build_store(settings), build_setup(settings)


def run(args: argparse.Namespace) -> int:
    """Answer one analysis (the parameter errors propagate as `InsightsInputError`, printed by the caller)."""
    store, setup = _sources(args)
    now = datetime.now(UTC)
    params = _params(args)
    asks: dict[str, Callable[[], dict[str, Any]]] = {
        "account": lambda: account_insights(store, setup, args.id, params, now),
        "journey": lambda: journey_insights(store, setup, args.name, params),
        "cohorts": lambda: cohorts(store, setup, params, now),
        "flows": lambda: flows(store, setup, params, now),
        "paths": lambda: paths(store, setup, params, now),
    }
    if args.analysis == "report":
        end = date_range({"to": args.to}, now).end if args.to else now
        path = write_report(args.out, report_data(store, setup, end))
        print(json.dumps({"report": str(path)}) if args.json else f"wrote {path}")
        return 0
    answer = asks[args.analysis]()
    print(json.dumps(answer) if args.json else "\n".join(FORMATS[args.analysis](answer)))
    return 0


# ---- tables for people ----


def _table(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Rows as aligned columns: text left, numbers right."""
    cells = [["" if v is None else f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(max(map(len, cells)))]
    numeric = [all(isinstance(r[i], int | float) for r in rows[1:] if i < len(r)) for i in range(len(widths))]
    return [
        "  ".join(c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()
        for row in cells
    ]


def _span(answer: Mapping[str, Any]) -> str:
    span = answer.get("range") or {}
    return f"{span.get('from', '')[:10]} .. {span.get('to', '')[:10]}" if span else "all time"


def _account(answer: Mapping[str, Any]) -> list[str]:
    account, best = answer["account"], answer["best_scores"]
    lines = [f"{account['name'] or account['id']} ({account['id']}), {answer['contacts']:,} contacts, {_span(answer)}"]
    lines += _table([("KPI", "value"), *((k.replace("_", " "), v) for k, v in answer["kpis"].items())])
    if not best:
        return [*lines, "best scores: none (no open lead scored)"]
    rows = [(model, b["score"], b["grade"] or "no grade", b["lead"]) for model, b in best.items()]
    return [
        *lines,
        "best current score of its open leads, per model:",
        *_table([("model", "score", "grade", "lead"), *rows]),
    ]


def _journey(answer: Mapping[str, Any]) -> list[str]:
    counters = [c for c in answer["tiles"][0]["counts"] if any(t["counts"][c] for t in answer["tiles"])]
    who = f"account {answer['account']}" if answer["account"] else "all accounts"
    header = [f"journey {answer['journey']} ({answer['target']}-based), {who}"]
    rows = [(t["id"], t["kind"], *(t["counts"][c] for c in counters)) for t in answer["tiles"]]
    return header + _table([("tile", "kind", *counters), *rows])


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}%"


def _cohorts(answer: Mapping[str, Any]) -> list[str]:
    width = max((len(c["cells"]) for c in answer["cohorts"]), default=0)
    head = (answer["granularity"], "included", *(f"+{k}" for k in range(1, width + 1)))
    rows = [(c["label"], c["included"], *(_percent(cell["percent"]) for cell in c["cells"])) for c in answer["cohorts"]]
    average = ("average", None, *(_percent(a["percent"]) for a in answer["average"]))
    title = (
        f"{answer['type']} of {answer['container']}s, {'rolling' if answer['rolling'] else 'fixed'}, {_span(answer)}"
    )
    return [title, *_table([head, *rows, average])]


def _flows(answer: Mapping[str, Any]) -> list[str]:
    ((side, value),) = answer["anchor"].items()
    last = " (its last occurrence)" if answer.get("occurrence") == "last" else ""
    lines = [
        f"{answer['paths']:,} {answer['container']}s whose path {side.replace('_', ' ')} {value}{last}, {_span(answer)}"
    ]
    for column in range(answer["columns"]):
        nodes = [n for n in answer["nodes"] if n["column"] == column]
        if nodes:
            lines.append(f"column {column + 1}: " + ", ".join(f"{n['label']} {n['count']:,}" for n in nodes))
    return lines


def _paths(answer: Mapping[str, Any]) -> list[str]:
    base = "start" if answer["percent_of"] == "start" else "previous step"
    rows = [
        (n["step"], n["reached"], _percent(n["percent"]), n["fallout"], _percent(n["fallout_percent"]))
        for n in answer["nodes"]
    ]
    lines = [
        f"{answer['container']}s, {_span(answer)}",
        *_table([("step", "reached", f"% of {base}", "fallout", "fallout %"), *rows]),
    ]
    path = answer.get("path")
    if path is not None:
        lines.append(f"account {answer['account']}: {'converted' if path['converted'] else 'not converted'}")
        lines += [
            f"  {e['at']}  {e['type']}" + (f"  ({e['content_type']})" if e["content_type"] else "")
            for e in path["events"]
        ]
    return lines


FORMATS: dict[str, Callable[[Mapping[str, Any]], list[str]]] = {
    "account": _account,
    "journey": _journey,
    "cohorts": _cohorts,
    "flows": _flows,
    "paths": _paths,
}
