"""The ``recallcore`` command line (also ``python -m recallcore``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recallcore", description="recallcore: an embedded memory layer for LLM agents.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("demo", help="run the offline demo (a few seconds, no model download)")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as exc:
        print(f"recallcore {args.command}: error: {exc}", file=sys.stderr)
        return 1
