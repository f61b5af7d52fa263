"""The ``respool`` command: ``respool tour`` and ``respool bench``.

Stdlib only (argparse), so the command works from a bare ``pip install respool``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]

# Names only: importing the benchmarks (and so every pool) just to parse arguments is wasteful.
_SUITES = ("free_list", "worker", "transient")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="respool",
        description="Pools for expensive resources, without the classic pitfalls.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "tour":
        from respool import tour

        return tour.main(quick=args.quick)
    # Checked here, not with argparse's choices=, which rejects an empty nargs="*" list.
    unknown = [name for name in args.suites if name not in _SUITES]
    if unknown:
        parser.error(f"unknown SUITE {unknown[0]!r} (choose from {', '.join(_SUITES)})")
    from respool import bench

    return bench.main(quick=args.quick, only=args.suites)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
