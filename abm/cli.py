"""The `abm` command: the same service calls the Function app makes, from a shell.

Thin by design: parse arguments, build through `abm.bootstrap`, call the service, print. Human output and progress
go to stderr or plain stdout; `--json` prints one JSON object on stdout for scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from abm import __version__
from abm.bootstrap import build_client
from abm.health import check_health
from abm.settings import SETTINGS, Settings, SettingsError, environment

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
    return parser


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
        return _settings(args)
    except SettingsError as exc:
        print(f"abm: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
