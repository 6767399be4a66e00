"""Command line: `gateway run --config FILE`, `gateway simulate call ...`."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the SIP gateway and its admin API")
    run.add_argument("--config", required=True, help="TOML configuration file")
    from gateway import simulate

    simulate.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from gateway.app import run_from_file

        return run_from_file(args.config)
    if args.command == "simulate":
        from gateway import simulate

        return simulate.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
