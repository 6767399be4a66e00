"""`gateway simulate call --number N --from P [--direction inbound|outbound]`: a dry run of the linking.

Prints the LinkPlan a call would get now (action, items, responsible, source, rule ids, and one
explanation line per rule) as JSON, reading the database and writing nothing (issue #3 item 7).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

DATABASE_ENV = "GATEWAY_DATABASE_URL"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `simulate` subcommand to the `gateway` command's subparsers."""
    parser = subparsers.add_parser("simulate", help="dry-run the CRM linking of a call (writes nothing)",
                                   description=__doc__)
    kinds = parser.add_subparsers(dest="simulated", required=True)
    call = kinds.add_parser("call", help="the LinkPlan a call would get now, as JSON")
    call.add_argument("--number", required=True, help="one of the gateway's numbers (any written form)")
    call.add_argument("--from", dest="party", required=True, help="the other party's phone number")
    call.add_argument("--direction", choices=("inbound", "outbound"), default="inbound")
    call.add_argument("--employee", type=int, help="for an outbound call: the id of the employee placing it")
    source = call.add_mutually_exclusive_group()
    source.add_argument("--config", help="gateway TOML configuration file (its [database] url is used)")
    source.add_argument("--database", help=f"database URL (default: ${DATABASE_ENV} or the default config's)")
    return parser


def database_url(args: argparse.Namespace) -> str:
    """The database to read: --database, else --config's, else $GATEWAY_DATABASE_URL, else the default."""
    from gateway.config import DatabaseConfig, load_config

    if args.database:
        return args.database
    if args.config:
        return load_config(args.config).database.url
    return os.environ.get(DATABASE_ENV) or DatabaseConfig().url


async def simulate(
    url: str, number: str, party: str, direction: str, employee_id: int | None = None
) -> dict[str, Any]:
    """The plan for one call, as the JSON-ready dict the CLI prints."""
    from gateway.crm_bridge.call_hooks import simulate_call
    from gateway.crm_bridge.linking import explain_lines
    from gateway.storage.session import make_engine, make_sessionmaker

    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            plan = await simulate_call(session, number, party, direction, agent_id=employee_id)
            await session.rollback()
    finally:
        await engine.dispose()
    return {**plan.to_dict(), "explanation": explain_lines(plan)}


def _missing_sqlite_file(url: str) -> bool:
    # Connecting would create an empty SQLite file: a dry run must not leave one behind.
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and name not in ("", ":memory:") and not os.path.exists(name)


def _shown(url: str) -> str:
    # The URL may carry the database password: never print it.
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed `simulate` command; 0 on success, 2 on an error the user can fix."""
    from sqlalchemy.exc import OperationalError

    from gateway.config import ConfigError
    from gateway.crm_bridge.call_hooks import UnknownNumber
    from gateway.storage.session import current_revision

    try:
        url = database_url(args)
        if _missing_sqlite_file(url) or current_revision(url) is None:
            print(f"error: the database {_shown(url)} has no gateway schema yet: start the gateway once "
                  "(`make run`) or point --database/--config at its database", file=sys.stderr)
            return 2
        if args.direction == "outbound" and args.employee is None:
            print("error: --employee: an outbound call is placed by an employee; give their id", file=sys.stderr)
            return 2
        result = asyncio.run(simulate(url, args.number, args.party, args.direction, args.employee))
    except OperationalError as exc:
        # The driver's own message names host and port only; the URL is shown without its password.
        print(f"error: cannot reach the database {_shown(url)}: {exc.orig}", file=sys.stderr)
        return 2
    except (ConfigError, UnknownNumber, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m gateway.simulate call ...` (the same as `gateway simulate call ...`)."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["simulate", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    sys.exit(main())
