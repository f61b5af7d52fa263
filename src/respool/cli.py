"""The ``respool`` command: ``respool tour``, ``respool bench`` and ``respool advise``.

Stdlib only (argparse), so the command works from a bare ``pip install respool``. A newcomer's
first tries are ``respool``, ``respool --help`` and ``respool --version``: all three answer
with exit status 0 instead of a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

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
    "ray",
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
    _add_advise(commands)
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
    if args.command == "advise":
        return _advise(args)
    # Everything is checked before the run starts: finding out after ten minutes of timing
    # that a file cannot be written would waste them.
    _check_bench_args(bench_parser, args)
    from respool import bench

    return bench.main(
        quick=args.quick, only=args.scenarios, json_path=args.json, plot_path=args.plot
    )


def _add_advise(commands: Any) -> None:
    advise = commands.add_parser(
        "advise",
        help="measure your resource and say whether to pool it, with which strategy",
        description="Measure an operation on your resource done fresh (create, use, destroy)"
        " against the same operation through each respool strategy, and recommend one, or"
        " no pool. Callables are named module:function (the current directory is importable);"
        " for example: respool advise tempfile:TemporaryFile mymodule:write_and_read.",
    )
    advise.add_argument("create", help="module:function that makes one resource")
    advise.add_argument("use", help="module:function that uses a resource once (its argument)")
    advise.add_argument("--reset", metavar="MODULE:FN", help="cleans a resource between uses")
    advise.add_argument(
        "--destroy",
        metavar="MODULE:FN",
        help="releases a resource (default: its close() method, if it has one)",
    )
    advise.add_argument(
        "--idle-gap",
        metavar="SECONDS",
        type=float,
        help="how long a resource typically waits between two uses in your program",
    )
    advise.add_argument(
        "--concurrency",
        metavar="N|LOW-HIGH",
        help="how many are in use at once: a steady N, or a range such as 0-16",
    )
    advise.add_argument(
        "--usage",
        metavar="FILE.json",
        type=Path,
        help="a pool's recorded usage, as saved from json.dumps(pool.stats().usage.as_dict())"
        " (instead of --idle-gap and --concurrency)",
    )
    advise.add_argument(
        "--budget",
        metavar="SECONDS",
        type=float,
        default=5.0,
        help="the most the measurement may take (default: 5)",
    )
    advise.add_argument("--json", action="store_true", help="print the advice as JSON")
    advise.add_argument(
        "--plot",
        metavar="FILE.png",
        type=Path,
        help="also draw the costs and, with --usage, concurrency over time and the idle gaps"
        " against the garbage collector (needs matplotlib: pip install 'respool[plot]')",
    )
    advise.set_defaults(advise_parser=advise)


def _resolve(parser: argparse.ArgumentParser, option: str, spec: str) -> Callable[..., Any]:
    """The callable named ``module:attribute`` (dots in the attribute walk into it)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        parser.error(f"{option}: expected module:function, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: your modules are importable
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        parser.error(f"{option}: cannot import {module_name!r} ({exc})")
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            parser.error(f"{option}: {module_name!r} has no attribute {attribute!r}")
    if not callable(target):
        parser.error(f"{option}: {spec} is not callable (got {target!r})")
    return cast("Callable[..., Any]", target)


def _concurrency(parser: argparse.ArgumentParser, text: str | None) -> int | tuple[int, int] | None:
    if text is None:
        return None
    low, sep, high = text.partition("-")
    try:
        if sep:
            return (int(low), int(high))
        return int(text)
    except ValueError:
        parser.error(f"--concurrency: expected N or LOW-HIGH (whole numbers), got {text!r}")


def _usage(parser: argparse.ArgumentParser, path: Path) -> respool.Usage:
    """A recorded usage read back from JSON (a bare record, or ``--json`` advice holding one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"--usage {path}: cannot read a JSON record ({exc})")
    if isinstance(data, dict) and isinstance(data.get("usage"), dict):
        data = data["usage"]
    try:
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return respool.Usage.from_dict(data)
    except (TypeError, ValueError) as exc:
        parser.error(f"--usage {path}: not a usage record ({exc})")


def _advise(args: argparse.Namespace) -> int:
    parser = args.advise_parser
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            parser.error("--plot needs matplotlib: pip install 'respool[plot]'")
        problem = _unwritable(args.plot)
        if problem:
            parser.error(f"--plot {args.plot}: cannot write there ({problem})")
    create = _resolve(parser, "create", args.create)
    use = _resolve(parser, "use", args.use)
    reset = None if args.reset is None else _resolve(parser, "--reset", args.reset)
    destroy = None if args.destroy is None else _resolve(parser, "--destroy", args.destroy)
    concurrency = _concurrency(parser, args.concurrency)
    usage = None if args.usage is None else _usage(parser, args.usage)
    from respool.advisor import advise

    try:
        advice = advise(
            create,
            use,
            reset=reset,
            destroy=destroy,
            idle_gap=args.idle_gap,
            concurrency=concurrency,
            usage=usage,
            budget=args.budget,
        )
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    except respool.AdviceError as exc:
        print(f"respool advise: {exc}", file=sys.stderr)
        if exc.__cause__ is not None:
            print(f"  (caused by {exc.__cause__!r})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(advice.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(advice)
    if args.plot is not None:
        advice.plot(args.plot)
        print(f"(chart written to {args.plot})", file=sys.stderr if args.json else sys.stdout)
    return 0


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
