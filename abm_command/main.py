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
from pathlib import Path

from abm import __version__
from abm.admin.health import check_health
from abm.bootstrap import Runtime, build_client, build_runtime, build_store
from abm.errors import InvalidInput
from abm.jobs.events import parse_replay_request, replay
from abm.jobs.pipeline import merge_writes
from abm.jobs.sync import ShardMessage, run_shard, sync
from abm.logs import configure as configure_logs
from abm.settings import SETTINGS, Settings, environment, export, function_keys
from abm.views.lead_scores import format_scores, lead_scores
from abm_command import admin as cli_admin
from abm_command import insights as cli_insights
from abm_command.errors import PARTIAL_FAILURE, run_command
from statestore.port import iso

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
    demo.add_argument(
        "--report", default="abm-report.html", metavar="FILE", help="where the HTML report goes (abm-report.html)"
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    score = commands.add_parser("score", help="show one lead's scores with their explanations")
    score.add_argument("--lead", required=True, type=uuid.UUID, metavar="ID", help="the lead's id (a GUID)")
    score.add_argument("--db", metavar="PATH", help="read a demo database instead of the configured org")
    score.add_argument("--json", action="store_true", help="print one JSON object")

    sync = commands.add_parser("sync", help="run the timer's job once: change tracking, segments, journeys, scoring")
    sync.add_argument("--full", action="store_true", help="read every table again instead of the changes")
    sync.add_argument("--dry-run", action="store_true", help="write nothing; list the writes it would make")
    sync.add_argument("--json", action="store_true", help="print one JSON object")

    serve = commands.add_parser(
        "serve", help="serve the app's HTTP routes on loopback (without Azure Functions Core Tools)"
    )
    serve.add_argument("--port", type=int, default=7071, help="TCP port (default 7071, as func start)")

    letters = commands.add_parser("deadletters", help="list events and shards that failed after their retries")
    letters.add_argument("--json", action="store_true", help="print one JSON object")

    again = commands.add_parser("replay", help="replay a stored or dead-lettered event, a record, or a time window")
    what = again.add_mutually_exclusive_group(required=True)
    what.add_argument("--event", metavar="ID", help="an event or dead-letter id (see abm deadletters)")
    what.add_argument("--record", nargs=2, metavar=("TABLE", "ID"), help="one record, e.g. contact <guid>")
    what.add_argument("--since", type=_checked(_moment), help="every record of events received from then ...")
    again.add_argument("--until", type=_checked(_moment), help="... until then (with --since)")
    again.add_argument("--dry-run", action="store_true", help="write nothing; list the exact writes instead")
    again.add_argument("--json", action="store_true", help="print one JSON object")

    cli_admin.add_commands(commands)  # provision, register-webhook
    cli_insights.add_command(commands)

    emulator = commands.add_parser("emulator", help="serve a local Dataverse Web API emulator until interrupted")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=0, help="default: a free port")
    emulator.add_argument("--db", metavar="PATH", help="SQLite file; data survives restarts (default: memory)")
    _tenant_options(emulator, default_size="none")
    emulator.add_argument(
        "--faults", metavar="SPEC", type=_checked(_faults), help="e.g. 429=0.1,503=0.03,reset=0.01,lost=0.01,seed=7"
    )
    emulator.add_argument(
        "--limit-requests", type=int, metavar="N", help="429 (0x80072322) past N requests per window (default: off)"
    )
    emulator.add_argument(
        "--limit-time",
        type=int,
        default=1_200_000,
        metavar="MS",
        help="429 (0x80072321) past MS milliseconds of combined execution time per window, simulated from the latency "
        "and the rows each request touches (default: Dataverse's %(default)s)",
    )
    emulator.add_argument(
        "--limit-window",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="the sliding window of --limit-requests and --limit-time (default: Dataverse's %(default)g)",
    )
    emulator.add_argument(
        "--latency-ms", type=int, default=0, metavar="N", help="delay added to every request; counts as execution time"
    )
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
        moment = datetime.fromisoformat(text)
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
    options = DemoOptions(size=args.size, seed=args.seed, now=now, db=args.db, faults=args.faults, report=args.report)
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
        print(f"report: {report['report']}", file=sys.stderr)
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


def _runtime(args: argparse.Namespace) -> Runtime:
    return build_runtime(Settings.from_env(environment(args.settings)))


def _sync(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    dry = runtime.dry_run() if args.dry_run else None
    client, store = (dry.client, dry.store) if dry else (runtime.client, runtime.store)
    messages: list[str] = []
    now = datetime.now(UTC)
    report = sync(
        client, store, runtime.setup, now=now, full=args.full, shards=runtime.settings.shards, enqueue=messages.extend
    )
    shard_reports = [run_shard(client, store, runtime.setup, ShardMessage.from_json(m)) for m in messages]
    result = report.as_dict()
    if shard_reports:  # no queue here: the shards run one after the other in this process
        result["writes"] = merge_writes(*(r.writes for r in shard_reports))
        result["requests"] = client.stats.as_dict()
        result["shards"] = [{**r.sync, "seconds": r.seconds} for r in shard_reports]
        failed = [f for r in shard_reports for f in r.failures]
        if failed:
            result["failures"] = failed
    if dry:
        result["dry_run_writes"] = list(dry.writes)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        mode = result.get("sync", {})
        print(
            f"sync ({mode.get('mode')}, {mode.get('changes', 0):,} changes) in {result['requests']['total']} requests"
        )
        for table, counts in result["writes"].items():
            print(f"  {table}: " + ", ".join(f"{n:,} {kind}" for kind, n in counts.items()))
        for failure in result.get("failures", []):
            print(f"  not written: {failure['items']:,} {failure['channel']} ({failure['error']}); due again next run")
        if args.dry_run:
            print(f"dry run: {len(result['dry_run_writes'])} write requests not sent")
    return PARTIAL_FAILURE if result.get("failures") else 0


def _deadletters(args: argparse.Namespace) -> int:
    store = build_store(Settings.from_env(environment(args.settings)))
    letters = [
        {
            "id": d.id,
            "kind": d.kind,
            "failed_at": iso(d.failed_at),
            "attempts": d.attempts,
            "record_id": d.record_id,
            "error": d.error,
        }
        for d in store.dead_letters()
    ]
    if args.json:
        print(json.dumps({"dead_letters": letters}))
    elif not letters:
        print("no dead letters")
    else:
        for letter in letters:
            print(
                f"{letter['id']}  {letter['kind']}  {letter['failed_at']}  "
                f"tries {letter['attempts']}  {letter['error']}"
            )
    return 0


def _replay(args: argparse.Namespace) -> int:
    if args.since and not args.until:
        raise InvalidInput("--since needs --until")
    if args.event:
        request: dict[str, object] = {"event": args.event}
    elif args.record:
        request = {"table": args.record[0], "id": args.record[1]}
    else:
        request = {"since": _moment(args.since).isoformat(), "until": _moment(args.until).isoformat()}
    request["dry_run"] = args.dry_run
    parsed, dry_run = parse_replay_request(json.dumps(request).encode())
    runtime = _runtime(args)
    dry = runtime.dry_run() if dry_run else None
    result = replay(runtime.client, runtime.store, runtime.setup, parsed, now=datetime.now(UTC), dry_run=dry)
    body = result.as_dict()
    if args.json:
        print(json.dumps(body, default=str))
    else:
        print(f"replayed {len(body['records'])} records, {body['accounts_evaluated']} accounts evaluated")
        for table, counts in body["summary"]["writes"].items():
            print(f"  {table}: " + ", ".join(f"{n:,} {kind}" for kind, n in counts.items()))
        if dry_run:
            print(f"dry run: {len(body['writes'])} write requests not sent")
    return 0


def _serve(args: argparse.Namespace) -> int:
    env = environment(args.settings)
    settings = Settings.from_env(env)
    export(env)  # the functions build their runtime from the environment, as in Azure
    from abm_command.localhost import run_local_host  # noqa: PLC0415 (the local host loads only for this command)
    from function_app import app  # noqa: PLC0415

    logging.getLogger("abm.localhost").setLevel(logging.INFO)  # one line per request (never keys or query strings)
    return run_local_host(
        app, keys=function_keys(settings), port=args.port, app_root=Path(__file__).resolve().parent.parent, settings=env
    )


def _emulator(args: argparse.Namespace) -> int:
    from devtools.serve import serve_emulator  # noqa: PLC0415 (dev tools load only for this command)

    return serve_emulator(args, now=args.now or _today())


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "whoami": _whoami,
    "settings": _settings,
    "demo": _demo,
    "score": _score,
    "sync": _sync,
    "serve": _serve,
    "deadletters": _deadletters,
    "replay": _replay,
    "insights": cli_insights.run,
    "emulator": _emulator,
    **cli_admin.COMMANDS,  # provision, register-webhook
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (abm_command.errors: 2 for bad settings or arguments)."""
    args = _parser().parse_args(argv)
    configure_logs(verbose=args.verbose)
    return run_command(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
