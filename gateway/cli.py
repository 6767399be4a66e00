"""Command line: `gateway run --config FILE`, `gateway simulate call ...`, `gateway admin create ...`,
`gateway token create ...`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the SIP gateway and its admin API")
    run.add_argument("--config", required=True, help="TOML configuration file")
    from gateway import simulate

    simulate.register(sub)
    from gateway.admin import commands

    commands.register(sub)
    return parser


def invoked_as(argv0: str | None = None) -> str:
    """How to run this CLI again, as the operator would type it: the script path they used
    (`.venv/bin/gateway` under `make run`, which is not on PATH) or `python -m gateway.cli`."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if Path(argv0).name in ("cli.py", "__main__.py", "-c", ""):
        return f"{_shortest(sys.executable)} -m gateway.cli"
    return argv0 if os.sep not in argv0 else _shortest(argv0)


def _shortest(path: str) -> str:
    # A path below the working directory is shown relative to it (".venv/bin/gateway"), others absolute.
    absolute = Path(path).absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return str(absolute)
    return str(relative) if os.sep in str(relative) else f".{os.sep}{relative}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from gateway.app import run_from_file

        return run_from_file(args.config, invoked_as())
    if args.command == "simulate":
        from gateway import simulate

        return simulate.run(args)
    if args.command in ("admin", "token"):
        from gateway.admin import commands

        return commands.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
