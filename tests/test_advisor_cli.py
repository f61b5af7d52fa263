"""``respool advise``: the advisor from a shell, on the user's own module."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from respool import cli
from respool.tour import advise as cases

MODULE = textwrap.dedent(
    """
    import threading

    def tiny():
        return bytearray(64)

    def poke(buf):
        buf[0] = 1

    def write_read(f):
        f.write(b"x" * 1024)
        f.seek(0)
        f.read()

    def rewind(f):
        f.seek(0)
        f.truncate()

    def broken():
        raise ConnectionRefusedError("nothing listens on port 1")

    RELEASE = threading.Event()

    def hangs():
        RELEASE.wait(30)

    NOT_CALLABLE = 3
    """
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of the user's, importable from the current directory as the CLI finds it."""
    (tmp_path / "advise_me.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield "advise_me"
    sys.modules.pop("advise_me", None)


def test_advise_prints_the_report(user_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Temp files with a reset: 'Pool it', the table and the reasons, exit status 0."""
    status = cli.main(
        [
            "advise",
            "tempfile:TemporaryFile",
            f"{user_module}:write_read",
            "--reset",
            f"{user_module}:rewind",
            "--budget",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "Pool it:" in out and "FixedPool" in out and "Why:" in out


def test_advise_json_and_plot(
    user_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the advice as JSON; --plot writes the chart."""
    pytest.importorskip("matplotlib")
    png = tmp_path / "advice.png"
    status = cli.main(
        [
            "advise",
            f"{user_module}:tiny",
            f"{user_module}:poke",
            "--json",
            "--plot",
            str(png),
            "--budget",
            "0.5",
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    data = json.loads(captured.out)
    assert data["pool"] is False and data["strategy"] is None
    assert png.read_bytes().startswith(b"\x89PNG")


def test_advise_describes_usage_from_flags(
    user_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--idle-gap and --concurrency place the usage: a busy compressor -> WorkerPool."""
    status = cli.main(
        [
            "advise",
            "respool.tour.advise:compressor",
            "respool.tour.advise:_compress",
            "--idle-gap",
            "0",
            "--concurrency",
            "3",
            "--json",
            "--budget",
            "1",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["strategy"] == "WorkerPool" and data["sizes"] == {"workers": 3}


def test_advise_reads_a_recorded_usage_file(
    user_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--usage FILE.json: a pool's record saved as JSON is read back and used, and the chart
    gains the concurrency and idle-gap panels."""
    pytest.importorskip("matplotlib")
    pool = cases.bursty_usage(bursts=4, width=4)
    usage = pool.stats().usage
    pool.close()
    assert usage is not None
    record = tmp_path / "usage.json"
    record.write_text(json.dumps(usage.as_dict()), encoding="utf-8")
    png = tmp_path / "usage.png"
    status = cli.main(
        [
            "advise",
            "tempfile:TemporaryFile",
            f"{user_module}:write_read",
            "--reset",
            f"{user_module}:rewind",
            "--usage",
            str(record),
            "--plot",
            str(png),
            "--budget",
            "0.5",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "What the pool recorded" in out and "ElasticPool" in out
    assert png.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        (["nocolon", "advise_me:poke"], "expected module:function"),
        (["no_such_module_xyz:f", "advise_me:poke"], "cannot import 'no_such_module_xyz'"),
        (["advise_me:missing", "advise_me:poke"], "has no attribute 'missing'"),
        (["advise_me:NOT_CALLABLE", "advise_me:poke"], "is not callable"),
        (["advise_me:tiny", "advise_me:poke", "--concurrency", "many"], "--concurrency"),
        (["advise_me:tiny", "advise_me:poke", "--budget", "0"], "budget"),
        (["advise_me:tiny", "advise_me:poke", "--usage", "nowhere.json"], "--usage"),
    ],
)
def test_advise_usage_errors(
    user_module: str, args: list[str], phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad name or option: exit status 2 and a message that says what is wrong."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["advise", *args])
    assert exited.value.code == 2
    assert phrase in capsys.readouterr().err


@pytest.mark.parametrize(
    ("create", "phrase"),
    [
        ("advise_me:broken", "create raised ConnectionRefusedError"),
        ("advise_me:hangs", "create did not return within the budget"),
    ],
)
def test_advise_failures_are_reported_with_status_1(
    user_module: str, create: str, phrase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A create that raises or hangs: a one-paragraph message on stderr, exit status 1."""
    try:
        status = cli.main(["advise", create, "advise_me:poke", "--budget", "0.5"])
    finally:
        sys.modules["advise_me"].RELEASE.set()  # lets a hanging create return and be cleaned
    assert status == 1
    assert phrase in capsys.readouterr().err


def test_the_console_command_runs_advise(user_module: str, tmp_path: Path) -> None:
    """`respool advise` as a new user types it, from the directory holding their module."""
    exe = Path(sys.executable).with_name("respool")
    done = subprocess.run(
        [str(exe), "advise", "advise_me:tiny", "advise_me:poke", "--budget", "0.5"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Don't pool" in done.stdout
