"""The ``respool`` command: ``respool tour`` and ``respool bench``.

Stdlib only (argparse), so the command works from a bare ``pip install respool``. A newcomer's
first tries are ``respool``, ``respool --help`` and ``respool --version``: all three answer
with exit status 0 instead of a usage error.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import respool

__all__ = ["main"]

# Names only: importing the benchmarks (and so every pool) just to parse arguments is wasteful.
# tests/test_cli.py checks that they match respool.bench.SCENARIOS and respool.bench.ALIASES.
_SCENARIOS = (
    "uncontended",
    "contended",
    "worker",
    "transient",
    "health",
    "asyncio",
    "postgres",
    "shipper",
)
_ALIASES = {
    "acquire_release": ("uncontended", "contended"),
    "free_list": ("uncontended", "contended"),
}


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
        "bench",
        help="time the pools against baselines measured in the same run",
        description="Time the pools against baselines measured in the same run. Each row"
        " shows the best and median of interleaved rounds and its ratio to its table's"
        " baseline. Peers (SQLAlchemy, psycopg_pool, redis-py) are timed when installed:"
        " pip install 'respool[bench]'.",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="CI's smoke run: every case, fewer and shorter rounds (about a minute)",
    )
    bench.add_argument(
        "--json", metavar="FILE", type=Path, help="also write every table to FILE as JSON"
    )
    bench.add_argument(
        "--plot",
        metavar="FILE.png",
        type=Path,
        help="also draw the ratios as bar charts (needs matplotlib: pip install 'respool[plot]')",
    )
    bench.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"run only these ({', '.join(_SCENARIOS)}); default: all",
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
    # Everything is checked before the run starts: finding out after ten minutes of timing
    # that a file cannot be written would waste them.
    _check_bench_args(bench_parser, args)
    from respool import bench

    return bench.main(
        quick=args.quick, only=args.scenarios, json_path=args.json, plot_path=args.plot
    )


def _check_bench_args(bench_parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, with the bench command's usage and exit status 2, an unknown scenario, an
    output file that cannot be written, or ``--plot`` without matplotlib."""
    # Checked here, not with argparse's choices=, which rejects an empty nargs="*" list.
    unknown = [name for name in args.scenarios if name not in _SCENARIOS + tuple(_ALIASES)]
    if unknown:
        bench_parser.error(
            f"unknown scenario {unknown[0]!r}; the scenarios are: {', '.join(_SCENARIOS)}"
        )
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        bench_parser.error("--plot needs matplotlib: pip install 'respool[plot]'")
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        if path is None:
            continue
        problem = _unwritable(path)
        if problem:
            bench_parser.error(f"{option} {path}: cannot write there ({problem})")


def _unwritable(path: Path) -> str:
    """Why *path* cannot be written, or "" if it can. Opened for appending, so an existing
    file is not emptied before the run has produced its replacement."""
    if path.is_dir():
        return "it is a directory"
    existed = path.exists()
    try:
        with path.open("a", encoding="utf-8"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    if not existed:
        path.unlink()
    return ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
