"""The ``respool`` command: ``respool tour`` and ``respool bench``.

Stdlib only (argparse), so the command works from a bare ``pip install respool``. A newcomer's
first tries are ``respool``, ``respool --help`` and ``respool --version``: all three answer
with exit status 0 instead of a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import respool

__all__ = ["main"]

# Names only: importing the benchmarks (and so every pool) just to parse arguments is wasteful.
# tests/test_cli.py checks that they match respool.bench.SUITES and respool.bench.ALIASES.
_SUITES = ("acquire_release", "worker", "transient", "health")
_ALIASES = {"free_list": "acquire_release"}


def _parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The top-level parser, and the ``bench`` one (its errors must show its own usage)."""
    parser = argparse.ArgumentParser(
        prog="respool",
        description="Pools for expensive resources, without the classic pitfalls.",
        epilog="Start with `respool tour`. Docs: README.md and DESIGN.md in the source tree.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {respool.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    tour = commands.add_parser(
        "tour", help="show the pools at work on real resources, with measured costs"
    )
    tour.add_argument(
        "--quick", action="store_true", help="fewer repetitions: seconds instead of a minute"
    )
    bench = commands.add_parser(
        "bench", help="time the pools against baselines measured in the same run"
    )
    bench.add_argument(
        "--quick", action="store_true", help="fewer repetitions: less precise, much faster"
    )
    bench.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help=f"run only these ({', '.join(_SUITES)}); default: all",
    )
    return parser, bench


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser, bench_parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # No command is a question ("what can this do?"), not a mistake: answer it.
        parser.print_help()
        return 0
    if args.command == "tour":
        from respool import tour

        return tour.main(quick=args.quick)
    # Checked here, not with argparse's choices=, which rejects an empty nargs="*" list.
    unknown = [name for name in args.suites if name not in _SUITES and name not in _ALIASES]
    if unknown:
        bench_parser.error(f"unknown suite {unknown[0]!r}; the suites are: {', '.join(_SUITES)}")
    from respool import bench

    return bench.main(quick=args.quick, only=args.suites)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
