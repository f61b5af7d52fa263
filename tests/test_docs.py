"""Every ```python block of the project's Markdown documents runs, as written.

Examples that are only read rot: a table nobody created, a name nobody defined. Here each block
is one test, named by file and line (``README.md:52``), run in a fresh temporary working
directory with a fresh namespace, so a block must be complete on its own, as a reader would
paste it. Tracebacks point at the document's own line numbers.

A block that cannot run here (it needs a server, say) is skipped by an HTML comment on the line
just above its fence, which must state the reason::

    <!-- test_docs: skip (needs a PostgreSQL server on 127.0.0.1:5432) -->

Keep that rare: a skipped example is an unchecked one. A block that needs one of the servers
the test suite talks to says so instead, and runs wherever the suite's other server tests run
(skipping, with the reason, only off CI when the server is missing: ``tests/services.py``)::

    <!-- test_docs: needs (postgres) -->
 Code that must not run at all (an API
still to come) belongs in a ```text block, which makes no promise.

An asyncio example runs its own event loop (``asyncio.run(main())``), as a script pasted from
it would; a top-level ``await`` fails to compile, at its line. An example that leaves asyncio
something to complain about when it is collected (a task whose exception nobody retrieved, a
task destroyed while pending) fails too, as it would leave its reader a logged error.
"""

from __future__ import annotations

import gc
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import services

ROOT = Path(__file__).resolve().parent.parent

#: Directories that hold no documentation of ours (tools' caches, virtualenvs, builds).
_IGNORED_DIRS = frozenset({"node_modules", "build", "dist", "venv", "__pycache__"})

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^`]*)$")
_SKIP = re.compile(r"^\s*<!--\s*test_docs:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->\s*$")
_NEEDS = re.compile(r"^\s*<!--\s*test_docs:\s*needs\s*\((?P<server>postgres|redis)\)\s*-->\s*$")
#: How a block's server is made sure of: skip or fail as the suite's server tests do.
_SERVERS = {"postgres": services.require_postgres, "redis": services.require_redis}
#: Info strings a reader would take for Python; only ``python`` runs, so the others are refused.
_PYTHONISH = frozenset({"py", "python3", "py3", "pycon", "ipython", "Python"})


def _documents() -> list[Path]:
    """Every Markdown file in the repository, outside hidden and tool directories."""
    found = []
    for path in sorted(ROOT.rglob("*.md")):
        parts = path.relative_to(ROOT).parts[:-1]
        if any(part.startswith(".") or part in _IGNORED_DIRS for part in parts):
            continue
        found.append(path)
    return found


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code, and any skip reason."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skip: str | None
    needs: str | None = None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    """The fenced blocks of one document, in order (fences inside fences are text)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, ticks = opening["indent"], opening["ticks"]
        language = opening["info"].strip().split(" ")[0] if opening["info"].strip() else ""
        previous = next((line for line in reversed(lines[:index]) if line.strip()), "")
        marker = _SKIP.match(previous)
        needs = _NEEDS.match(previous)
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if closing and closing["ticks"].startswith(ticks) and not closing["info"].strip():
                break
            body.append(lines[end][len(indent) :] if lines[end].startswith(indent) else lines[end])
            end += 1
        else:
            raise AssertionError(f"{path.name}:{index + 1}: code block never closed")
        skip = marker["reason"].strip() if marker else None
        server = needs["server"] if needs else None
        blocks.append(Block(path, index + 1, language, "\n".join(body) + "\n", skip, server))
        index = end + 1
    return blocks


DOCUMENTS = _documents()
BLOCKS = [block for path in DOCUMENTS for block in _blocks(path)]
PYTHON = [block for block in BLOCKS if block.language == "python"]


def _run(code: str, filename: str, line: int, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run one example's *code* (its fence on *line* of *filename*) in a fresh namespace and
    collect it; return what asyncio logged as errors meanwhile."""
    caplog.set_level(logging.ERROR, logger="asyncio")
    caplog.clear()
    # Leading newlines make the compiled code's line numbers those of the document.
    compiled = compile("\n" * line + code, filename, "exec")
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    exec(compiled, namespace)
    namespace.clear()
    gc.collect()  # an example that leaks a file or a socket fails here, not in a later test
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "asyncio" and record.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize("block", PYTHON, ids=[block.name for block in PYTHON])
def test_example_runs(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The example runs as written, in an empty working directory of its own, and leaves
    asyncio nothing to log."""
    if block.skip is not None:
        pytest.skip(block.skip)
    if block.needs is not None:
        _SERVERS[block.needs]()
    monkeypatch.chdir(tmp_path)
    complaints = _run(block.code, str(block.path), block.line, caplog)
    assert complaints == [], f"{block.name}: asyncio logged errors"
    capsys.readouterr()


def test_documents_with_examples_are_found() -> None:
    """The collector sees the documents a reader starts from, and their examples."""
    names = {block.path.relative_to(ROOT).as_posix() for block in PYTHON}
    assert {"README.md", "DESIGN.md"} <= names


def test_python_blocks_say_python() -> None:
    """A block tagged ``py`` or ``python3`` would look tested and never run: use ``python``
    (run) or ``text`` (not run)."""
    sloppy = [block.name for block in BLOCKS if block.language in _PYTHONISH]
    assert sloppy == []


def test_skips_are_rare_and_explained() -> None:
    """Every skip marker states a reason and sits right above a ```python block."""
    assert all(block.skip for block in PYTHON if block.skip is not None)
    marked = sum(
        line.count("<!-- test_docs:")
        for path in DOCUMENTS
        for line in path.read_text(encoding="utf-8").splitlines()
    )
    attached = sum(1 for block in PYTHON if block.skip is not None or block.needs is not None)
    assert marked == attached, "a test_docs marker is not directly above a ```python block"
    skipped = sum(1 for block in PYTHON if block.skip is not None)
    assert skipped <= max(1, len(PYTHON) // 5)


_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")
_FILE_MENTION = re.compile(r"`(?P<target>[\w./-]+\.(?:md|py|toml|txt))`")


@pytest.mark.parametrize(
    "path", DOCUMENTS, ids=[path.relative_to(ROOT).as_posix() for path in DOCUMENTS]
)
def test_documents_cite_files_that_exist(path: Path) -> None:
    """A document that sends readers to ``DESIGN.md`` or ``benchmarks/worker.py`` must not
    send them nowhere: relative links and backticked file names resolve in the repository."""
    text = path.read_text(encoding="utf-8")
    missing = []
    for pattern in (_LINK, _FILE_MENTION):
        for match in pattern.finditer(text):
            target = match["target"]
            if "://" in target or target.startswith("mailto:"):
                continue
            if "/" not in target and target.endswith(".py"):
                continue  # a bare module name (`fixed.py`) is not a path from here
            # Paths are written from the document, the repository root or the source tree.
            candidates = [path.parent, ROOT, ROOT / "src", ROOT / "src" / "respool"]
            if not any((base / target).exists() for base in candidates):
                missing.append(target)
    assert missing == []


def test_documents_stay_inside_the_repository() -> None:
    """The project's documents never point at files outside the repository."""
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        assert "../" not in text, path
        assert "/work/" not in text, path


def test_parser_finds_fences_markers_and_line_numbers(tmp_path: Path) -> None:
    """The collector itself: info strings, skip reasons, indented and nested fences."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n"
        "```python\n"
        "x = 1\n"
        "```\n"
        "<!-- test_docs: skip (needs a Redis server) -->\n"
        "\n"
        "```python\n"
        "import redis\n"
        "```\n"
        "- a list item:\n"
        "  ```python\n"
        "  y = 2\n"
        "  ```\n"
        "````text\n"
        "```python\n"
        "not a block of its own\n"
        "```\n"
        "````\n",
        encoding="utf-8",
    )
    blocks = _blocks(doc)
    assert [(b.line, b.language, b.skip) for b in blocks] == [
        (2, "python", None),
        (7, "python", "needs a Redis server"),
        (11, "python", None),
        (14, "text", None),
    ]
    assert blocks[0].code == "x = 1\n"
    assert blocks[2].code == "y = 2\n"
    assert "not a block of its own" in blocks[3].code


def test_failures_point_at_the_document_line(tmp_path: Path) -> None:
    """A broken example's traceback names the document and the line a reader must fix."""
    doc = tmp_path / "doc.md"
    doc.write_text("Intro\n\n```python\nok = 1\nraise ValueError('boom')\n```\n", encoding="utf-8")
    (block,) = _blocks(doc)
    code = compile("\n" * block.line + block.code, str(doc), "exec")
    with pytest.raises(ValueError, match="boom") as caught:
        exec(code, {})
    assert caught.traceback[-1].lineno + 1 == 5  # pytest counts lines from 0
    assert str(caught.traceback[-1].path) == str(doc)


def test_async_examples_are_held_to_account(caplog: pytest.LogCaptureFixture) -> None:
    """An asyncio example runs through ``asyncio.run`` like any script, and a task it
    abandons with an unretrieved exception is caught; a top-level ``await`` does not compile."""
    tidy = (
        "import asyncio\n"
        "async def main():\n"
        "    await asyncio.sleep(0)\n"
        "    return 42\n"
        "assert asyncio.run(main()) == 42\n"
    )
    assert _run(tidy, "doc.md", 3, caplog) == []
    careless = (
        "import asyncio\n"
        "async def boom():\n"
        "    raise ValueError('nobody looks')\n"
        "async def main():\n"
        "    asyncio.get_running_loop().create_task(boom())\n"
        "    await asyncio.sleep(0)\n"
        "asyncio.run(main())\n"
    )
    complaints = _run(careless, "doc.md", 3, caplog)
    assert any("never retrieved" in message for message in complaints)
    with pytest.raises(SyntaxError) as caught:
        _run("import asyncio\nawait asyncio.sleep(0)\n", "doc.md", 3, caplog)
    assert caught.value.lineno == 5
