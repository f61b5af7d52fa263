"""The ``respool`` command: ``respool tour`` and ``respool bench``.

Stdlib only (argparse), so the command works from a bare ``pip install respool``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit status."""
    args = _parser().parse_args(argv)
    if args.command == "tour":
        from respool import tour

        return tour.main(quick=args.quick)
    from respool import bench

    return bench.main(quick=args.quick)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
