"""The admin commands of `abm`: `provision` and `register-webhook` (argparse and printing only).

abm_command/main.py wires them in with `add_commands(commands)` on its subparsers and `COMMANDS` in its dispatch
table; `run(args)` runs one on its own (None for any other command). Both read settings like the other commands: the
environment, overlaid by `--settings FILE`. Human output by default; `--json` prints one JSON object on stdout for
scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from abm.admin.provision import CHANGE_TRACKING_HOWTO, ProvisionError, ProvisionReport, provision
from abm.admin.webhooks import (
    DEFAULT_NAME,
    WEBHOOK_TABLES,
    RegistrationReport,
    filtering_from_selects,
    register_webhook,
)
from abm.bootstrap import build_client, journeys, mapping_config, scoring_models, segments
from abm.jobs.mirror import mirror_queries
from abm.settings import Settings, SettingsError, environment
from abm_command.errors import run_command

__all__ = ["COMMANDS", "add_commands", "engine_columns", "run"]


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `provision` and `register-webhook` to the `abm` subparsers (`parser.add_subparsers(...)`)."""
    prov = commands.add_parser(
        "provision",
        help="create the product's tables, columns and alternate key in the org (needs customization privileges)",
        description="Create what is missing of the product's schema through the metadata Web API, wait for the "
        "alternate key to be active, and report the tables whose change tracking is off (never turned on here).",
    )
    prov.add_argument("--dry-run", action="store_true", help="send only reads and list what would be created")
    prov.add_argument("--solution", metavar="NAME", help="add what is created to this unmanaged solution")
    prov.add_argument(
        "--wait", type=float, default=600.0, metavar="SECONDS", help="wait at most this long for the key (600)"
    )
    prov.add_argument("--json", action="store_true", help="print one JSON object")

    hook = commands.add_parser(
        "register-webhook",
        help="register the Function app's webhook and its steps in Dataverse (key from ABM_WEBHOOK_KEY)",
        description="Create or update the service endpoint (WebhookKey auth, key from ABM_WEBHOOK_KEY) and one "
        "asynchronous post-operation step per message (Create, Update, Delete) and table "
        f"({', '.join(WEBHOOK_TABLES)}); Update steps filter on the columns the engine reads.",
    )
    hook.add_argument(
        "--url",
        required=True,
        help="the webhook function's URL, without ?code=, e.g. https://<app>.azurewebsites.net/api/dataverse/webhook",
    )
    hook.add_argument("--name", default=DEFAULT_NAME, help=f"name of the service endpoint (default {DEFAULT_NAME})")
    hook.add_argument("--dry-run", action="store_true", help="send only reads and list what would be written")
    hook.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int | None:
    """Run `provision` or `register-webhook`; None for any other command. Returns the exit status
    (abm_command.errors): 0 done, 1 the org refused or is not in a usable state, 2 bad settings or definitions."""
    command = COMMANDS.get(getattr(args, "command", None) or "")
    return None if command is None else run_command(lambda: command(args))


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(environment(getattr(args, "settings", None)))


def engine_columns(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The columns the engine reads, by webhook table: the `$select` of the sync's reads for the configured
    definitions (abm.jobs.mirror.mirror_queries), as logical names. A change to any other column cannot matter."""
    queries = mirror_queries(mapping_config(settings), scoring_models(settings), segments(settings), journeys(settings))
    return filtering_from_selects({t: queries[t].columns for t in WEBHOOK_TABLES if t in queries})


# ---- provision -----------------------------------------------------------------------------------------------------


def _provision(args: argparse.Namespace) -> int:
    with build_client(_settings(args)) as client:
        try:
            report = provision(client, dry_run=args.dry_run, solution=args.solution, wait=args.wait)
        except ProvisionError as exc:
            _print_provision(exc.report, args.json, error=str(exc))
            return 1
    _print_provision(report, args.json)
    return 0 if report.ok else 1


def _print_provision(report: ProvisionReport, as_json: bool, error: str | None = None) -> None:
    if as_json:
        body = report.as_dict()
        if error:
            body |= {"ok": False, "error": error}
        print(json.dumps(body, indent=2))
        return
    verb = "would create" if report.dry_run else "created"
    if report.actions:
        for action in report.actions:
            print(f"{verb} {action}")
    else:
        print("nothing to create: the product's tables, columns and key exist")
    for name, status in report.keys.items():
        print(f"alternate key {name}: {status}")
    for conflict in report.conflicts:
        print(f"conflict: {conflict}")
    off = report.change_tracking_off
    if off:
        print(f"change tracking is off for: {', '.join(off)} (the sync needs it; provision never turns it on)")
        print(f"  {CHANGE_TRACKING_HOWTO}")
    else:
        print("change tracking is on for every table the sync reads")
    if error:
        print(f"abm: {error}", file=sys.stderr)
    print(f"{report.requests.get('total', 0)} requests sent", file=sys.stderr)


# ---- register-webhook ----------------------------------------------------------------------------------------------


def _register(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.dry_run and not settings.webhook_key:
        raise SettingsError("ABM_WEBHOOK_KEY is not set: it must hold the function key of the webhook function")
    columns = engine_columns(settings)
    with build_client(settings) as client:
        report = register_webhook(
            client,
            url=args.url,
            key=settings.webhook_key,
            filtering_attributes=columns,
            name=args.name,
            dry_run=args.dry_run,
        )
    _print_registration(report, args.json)
    return 0


def _print_registration(report: RegistrationReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    would = "would " if report.dry_run else ""
    done = {"create": "create" if report.dry_run else "created", "update": "update" if report.dry_run else "updated"}
    print(f"{would}{done[report.endpoint_action]} webhook {report.name} -> {report.url} (key from ABM_WEBHOOK_KEY)")
    for step in report.steps:
        if step.action == "unchanged":
            continue
        changes = f" ({', '.join(step.changes)})" if step.changes else ""
        print(f"{would}{done[step.action]} step {step.name}{changes}")
    counts = report.counts()
    if report.dry_run:
        print(f"steps: {counts['create']} to create, {counts['update']} to update, {counts['unchanged']} unchanged")
    else:
        print(f"steps: {counts['create']} created, {counts['update']} updated, {counts['unchanged']} unchanged")
    for duplicate in report.duplicates:
        print(f"warning: duplicate step {duplicate} has the same name: delete it in the Plug-in Registration Tool")
    print(f"{report.requests.get('total', 0)} requests sent", file=sys.stderr)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"provision": _provision, "register-webhook": _register}
