"""`gateway admin create` and `gateway token create`: API tokens without the API (see bootstrap).

The plain token is the only thing written to stdout (so `TOKEN=$(gateway token create ...)` works);
what was done goes to stderr. Exit 0 on success, 2 for anything the operator can fix (a bad
configuration, an unreachable database, an unknown or deactivated employee, a bad option).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from gateway.admin.bootstrap import CLI_TOKEN_NAME, BootstrapError, IssuedToken, create_admin, create_token


def register(subparsers: Any) -> None:
    """Add the `admin` and `token` subcommands to the `gateway` command's subparsers."""
    admin = subparsers.add_parser("admin", help="manage administrators from the command line")
    admin_kinds = admin.add_subparsers(dest="admin_command", required=True)
    create = admin_kinds.add_parser(
        "create", help="create an administrator and print an API token for them (shown once)",
        description="Create an active administrator (with the manage-numbers right and every CRM right) "
                    "and print a new API token for them. Migrates a new database first.")
    create.add_argument("--config", required=True, help="gateway TOML configuration file (its [database] url)")
    create.add_argument("--name", required=True, help="the administrator's name")
    create.add_argument("--email", help="their email address (optional)")
    create.add_argument("--extension", help="their internal SIP extension (optional)")

    token = subparsers.add_parser("token", help="manage API tokens from the command line")
    token_kinds = token.add_subparsers(dest="token_command", required=True)
    issue = token_kinds.add_parser(
        "create", help="print a new API token for an existing, active employee (shown once)",
        description="Print a new API token for an existing, active employee; their other tokens stay valid.")
    issue.add_argument("--config", required=True, help="gateway TOML configuration file (its [database] url)")
    issue.add_argument("--employee", required=True, type=int, help="the employee id")
    issue.add_argument("--name", default=None, help="a label for the token (shown in GET /tokens)")


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed `admin create` / `token create`; 0 on success, 2 on an error the user can fix."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    from gateway.config import ConfigError, load_config
    from gateway.storage.session import connection_problem

    try:
        url = load_config(args.config).database.url
    except ConfigError as error:
        print(f"gateway: configuration error: {error}", file=sys.stderr)
        return 2
    try:
        issued = asyncio.run(_carry_out(args, url))
    except (OperationalError, InterfaceError, OSError) as error:
        print(f"gateway: configuration error: [database] url: {connection_problem(url, error)}", file=sys.stderr)
        return 2
    except BootstrapError as error:
        print(f"gateway: {error}", file=sys.stderr)
        return 2
    what = "administrator created" if args.command == "admin" else "API token created"
    print(f"{what}: employee {issued.employee_id}, token id {issued.token_id} "
          "(the token below is shown once: store it now)", file=sys.stderr)
    print(issued.token, flush=True)
    return 0


async def _carry_out(args: argparse.Namespace, url: str) -> IssuedToken:
    from gateway.storage.session import make_engine, make_sessionmaker, migrate

    if args.command == "admin":
        # The first administrator usually comes before the first start: give the database its schema.
        await migrate(url)
    elif await asyncio.to_thread(_has_no_schema, url):
        raise BootstrapError("the database has no gateway schema yet: start the gateway once, or create "
                             "the first administrator with 'gateway admin create'")
    engine = make_engine(url)
    try:
        if args.command == "admin":
            return await create_admin(make_sessionmaker(engine), args.name, args.email, args.extension)
        return await create_token(make_sessionmaker(engine), args.employee, args.name or CLI_TOKEN_NAME)
    finally:
        await engine.dispose()


def _has_no_schema(url: str) -> bool:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from gateway.storage.session import current_revision

    parsed = make_url(url)
    database = parsed.database or ""
    # Connecting would create an empty SQLite file where the operator probably mistyped a path.
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).exists():
        return True
    return current_revision(url) is None
