"""The `abm` command: the same service calls the Function app makes, from a shell.

Thin by design: parse arguments, build through `abm.bootstrap`, call the service, print. Human output and progress
go to stderr or plain stdout; `--json` prints one JSON object on stdout for scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from abm import __version__
from abm.bootstrap import build_client
from abm.definitions import DefinitionError
from abm.health import check_health
from abm.journeys_job import JourneyCheckError
from abm.lead_scores import format_scores, lead_scores
from abm.settings import SETTINGS, Settings, SettingsError, environment
from dataverse.errors import DataverseError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abm",
        description="Account-based marketing engine for Dynamics 365 / Dataverse.",
    )
    parser.add_argument("--version", action="version", version=f"abm {__version__}")
    parser.add_argument(
        "--settings",
        metavar="FILE",
        help="read app settings from the Values of a local.settings.json file (default: the environment)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each Dataverse request to stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    whoami = commands.add_parser("whoami", help="check the connection: call WhoAmI on the configured org")
    whoami.add_argument("--json", action="store_true", help="print one JSON object")

    commands.add_parser("settings", help="list every app setting, its meaning, and whether it is set")

    demo = commands.add_parser(
        "demo", help="run the main job against an embedded Dataverse emulator loaded with a synthetic tenant"
    )
    _tenant_options(demo, default_size="small")
    demo.add_argument("--db", metavar="PATH", help="keep the emulator's data in this SQLite file (default: memory)")
    demo.add_argument(
        "--faults",
        metavar="SPEC",
        type=_checked(_faults),
        help="inject faults, e.g. 429=0.1,503=0.03,reset=0.01,lost=0.01,seed=7",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    score = commands.add_parser("score", help="show one lead's scores with their explanations")
    score.add_argument("--lead", required=True, type=uuid.UUID, metavar="ID", help="the lead's id (a GUID)")
    score.add_argument("--db", metavar="PATH", help="read a demo database instead of the configured org")
    score.add_argument("--json", action="store_true", help="print one JSON object")

    emulator = commands.add_parser("emulator", help="serve a local Dataverse Web API emulator until interrupted")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=0, help="default: a free port")
    emulator.add_argument("--db", metavar="PATH", help="SQLite file; data survives restarts (default: memory)")
    _tenant_options(emulator, default_size="none")
    emulator.add_argument(
        "--faults", metavar="SPEC", type=_checked(_faults), help="e.g. 429=0.1,503=0.03,reset=0.01,lost=0.01,seed=7"
    )
    emulator.add_argument("--limit-requests", type=int, metavar="N", help="429 past N requests per window")
    emulator.add_argument("--limit-window", type=float, default=300.0, metavar="SECONDS")
    emulator.add_argument("--latency-ms", type=int, default=0, metavar="N", help="delay added to every request")
    return parser


def _checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type that validates with `parse` (a ValueError becomes a usage error) and keeps the text."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _tenant_options(parser: argparse.ArgumentParser, *, default_size: str) -> None:
    parser.add_argument(
        "--size", default=default_size, type=_checked(_size), help="none | small | ref | a number of accounts"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the synthetic tenant (default 1)")
    parser.add_argument("--now", type=_moment, help="when the tenant's history ends, ISO 8601 (default: today 00:00Z)")


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _size(text: str) -> object:
    from devtools.tenant import size_from  # noqa: PLC0415 (dev tools load only for demo and emulator)

    return size_from(text)


def _faults(text: str) -> object:
    from devtools.emulator.limits import Faults  # noqa: PLC0415 (dev tools load only for demo and emulator)

    return Faults.parse(text)


def _today() -> datetime:
    """The default `--now`: today at midnight UTC (entry points may read the clock; the domain never does)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _whoami(args: argparse.Namespace) -> int:
    env = environment(args.settings)
    report = check_health(lambda: build_client(Settings.from_env(env)))
    body = report.as_dict()
    if args.json:
        print(json.dumps(body, indent=2))
    elif report.ok:
        dv = body["dataverse"]
        print(f"connected to {dv['url']} as application user {dv['user_id']} (organization {dv['organization_id']})")
    else:
        print(
            f"abm: cannot reach Dataverse: {json.dumps({k: v for k, v in body.items() if k != 'status'})}",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def _settings(args: argparse.Namespace) -> int:
    source = environment(args.settings)
    Settings.from_env(source)  # validate: a bad value fails here with its name
    width = max(len(s.name) for s in SETTINGS)
    for setting in SETTINGS:
        value = source.get(setting.name, "")
        shown = ("(set)" if setting.secret else value) if value else f"(default: {setting.default or 'empty'})"
        print(f"{setting.name:<{width}}  {shown}\n{'':<{width}}  {setting.help}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from devtools.demo import DemoOptions, run_demo  # noqa: PLC0415 (dev tools load only for this command)

    now = args.now or _today()
    options = DemoOptions(size=args.size, seed=args.seed, now=now, db=args.db, faults=args.faults)
    report = run_demo(options, now=now).as_dict()
    if args.json:
        print(json.dumps(report))
    else:
        tenant = ", ".join(f"{count:,} {kind}" for kind, count in report["tenant"].items())
        print(f"read {tenant} in {report['requests']['total']} requests")
        for name, counts in report["segments"].items():
            print(f"segment {name}: {counts['members']:,} contacts at {counts['accounts']:,} accounts")
        for name, journey in report["journeys"].items():
            tiles = journey["tiles"]
            entered = tiles[next(iter(tiles))]["entered"] if tiles else 0
            done = {c: sum(t[c] for t in tiles.values()) for c in ("activities", "leads", "workflows", "emails")}
            print(
                f"journey {name} ({journey['target']}-based): {entered:,} entered; "
                + ", ".join(f"{n:,} {kind}" for kind, n in done.items())
            )
        for name, summary in report["scoring"]["models"].items():
            grades = ", ".join(f"{grade} {n:,}" for grade, n in summary["grades"].items())
            print(
                f"model {name} ({summary['target']}-based): {summary['scored']:,} scored, "
                f"{summary['sales_ready']:,} sales-ready; grades {grades}"
            )
        written = ", ".join(
            f"{kind} {n:,} {table}" for table, counts in report["writes"].items() for kind, n in counts.items()
        )
        print(f"wrote {written}")
    return 0


def _score(args: argparse.Namespace) -> int:
    if args.db:
        from devtools.demo import demo_client  # noqa: PLC0415 (dev tools load only for a demo database)

        with demo_client(args.db) as client:
            rows = lead_scores(client, args.lead)
    else:
        with build_client(Settings.from_env(environment(args.settings))) as client:
            rows = lead_scores(client, args.lead)
    print(json.dumps({"lead": str(args.lead), "scores": rows}) if args.json else format_scores(args.lead, rows))
    return 0


def _emulator(args: argparse.Namespace) -> int:
    from devtools.serve import serve_emulator  # noqa: PLC0415 (dev tools load only for this command)

    return serve_emulator(args, now=args.now or _today())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad settings or arguments)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "whoami":
            return _whoami(args)
        if args.command == "demo":
            return _demo(args)
        if args.command == "emulator":
            return _emulator(args)
        if args.command == "score":
            return _score(args)
        return _settings(args)
    except (SettingsError, DefinitionError, JourneyCheckError) as exc:
        print(f"abm: {exc}", file=sys.stderr)
        return 2
    except DataverseError as exc:
        print(f"abm: Dataverse: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
