"""Each ``respool.contrib`` module: its docstring example runs, a missing driver is named."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from tests import services

pytestmark = pytest.mark.timeout(60)

#: The modules whose docstring has an example, and the server it needs.
EXAMPLES: dict[str, Callable[[], object] | None] = {
    "psycopg": services.require_postgres,
    "asyncpg": services.require_postgres,
    "redis": services.require_redis,
}
_HEADER = re.compile(r"^Example[^\n]*::\n", re.M)


def _example(module_name: str) -> str:
    """The indented block after the docstring's ``Example...::`` line, dedented."""
    doc = inspect.getdoc(importlib.import_module(f"respool.contrib.{module_name}"))
    assert doc is not None
    found = _HEADER.search(doc)
    assert found is not None, f"respool.contrib.{module_name} has no example"
    lines = []
    for line in doc[found.end() :].splitlines():
        if line and not line.startswith(" "):
            break  # the prose after the example
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


@pytest.mark.parametrize("module_name", sorted(EXAMPLES))
def test_module_example_runs(module_name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The docstring's example runs, as a reader would paste it, against the real server."""
    need = EXAMPLES[module_name]
    if need is not None:
        need()
    code = _example(module_name)
    assert code.strip()
    exec(compile(code, f"respool.contrib.{module_name} example", "exec"), {"__name__": "x"})
    capsys.readouterr()


@pytest.mark.parametrize("module_name", ["psycopg", "asyncpg", "redis"])
def test_missing_driver_says_what_to_install(module_name: str) -> None:
    """Without its driver, a contrib module's import names the extra to install."""
    code = (
        f"import sys; sys.modules[{module_name!r}] = None\n"
        "try:\n"
        f"    import respool.contrib.{module_name}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert f"respool.contrib.{module_name} needs its driver" in out
    assert f"pip install 'respool[{module_name}]'" in out
