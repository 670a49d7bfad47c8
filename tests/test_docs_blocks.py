"""Every code block of README.md and docs/**/*.md runs, and prints what the page says.

The rules a page follows (docs/writing-docs.md explains them to writers):

- A fence names its language. ``python`` blocks run as programs in a subprocess; ``sh`` and
  ``bash`` blocks run with ``bash -e``; any other language (``text``,
  ``json``, ``toml``, ...) is data and is not run.
- A ``text`` block right after a runnable block is its expected output: each of its lines
  must match a distinct line of what the block printed (stdout and stderr together, in any
  order, so remote output and log lines may interleave); ``...`` in a line matches any text.
  A block that prints on stdout must have such an output block, and nothing it prints may be
  a traceback unless its output block shows one.
- Blocks of one page run in order, in one fresh directory with a fresh ``HOME`` (so a fresh
  cluster secret in ``~/.discoro/secret``, shared by the page's node and clients), on
  loopback; the ``discoronode``/``discoro`` programs are those of this checkout.
- An HTML comment right before a fence changes how it runs:
  ``<!-- not-run: REASON -->`` skips it (counted and listed, never silently);
  ``<!-- background: REGEX -->`` starts it in the background, waits for a line matching
  REGEX (its output block, if any, is checked against what it printed until then) and stops
  it (SIGTERM) when the page's blocks are done: a node or a scheduler for the blocks below.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from procs import SRC

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE = {"python": "python", "py": "python", "sh": "sh", "bash": "sh"}
DATA = {"text", "json", "toml", "ini", "yaml", "html", "diff"}
DIRECTIVE = re.compile(r"^<!--\s*(not-run|background)\s*:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)\s*$")
BLOCK_TIMEOUT = 60.0
READY_TIMEOUT = 60.0


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    directive: tuple[str, str] | None = None
    expected: list[str] | None = None  # lines of the output block after it
    where: str = field(init=False)

    def __post_init__(self) -> None:
        name = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        self.where = f"{name}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def parse(path: Path) -> list[Block]:
    """The fenced blocks of a page, each with the directive before it and its output block."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    directive: tuple[str, str] | None = None
    previous_runnable: Block | None = None  # output may follow it, across blank lines only
    i = 0
    while i < len(lines):
        text = lines[i]
        fence = FENCE.match(text)
        if not fence:
            match = DIRECTIVE.match(text.strip())
            if match:
                directive = (match[1], match[2])
            elif text.strip():
                directive = None
                previous_runnable = None
            i += 1
            continue
        indent, marker, lang = fence[1], fence[2], fence[3].lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(marker) and lines[i].strip().strip(marker[0]) == ""
        ):
            body.append(lines[i].removeprefix(indent))
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: unclosed code fence")
        i += 1
        if not lang:
            raise AssertionError(f"{path}:{start + 1}: a code fence must name its language")
        if lang not in RUNNABLE and lang not in DATA:
            raise AssertionError(f"{path}:{start + 1}: unknown code block language {lang!r}")
        if lang == "text" and previous_runnable is not None and directive is None:
            previous_runnable.expected = body
            previous_runnable = None
            continue
        block = Block(path, start + 1, RUNNABLE.get(lang, lang), "\n".join(body) + "\n")
        block.directive, directive = directive, None
        blocks.append(block)
        previous_runnable = block if lang in RUNNABLE else None
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in parse(page)]


def line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in expected.strip().split("...")]
    return re.compile(r"\s*" + ".*".join(parts) + r"\s*")


def check_output(block: Block, stdout: str, stderr: str) -> None:
    shown = f"{block.where}: the block printed:\n{stdout}\n--- stderr ---\n{stderr}"
    if block.expected is None:
        assert not stdout.strip(), f"{shown}\n(it prints: add a text block with its output)"
        expected: list[str] = []
    else:
        expected = [line for line in block.expected if line.strip()]
    actual = (stdout + "\n" + stderr).splitlines()
    for line in expected:
        pattern = line_pattern(line)
        index = next((k for k, got in enumerate(actual) if pattern.fullmatch(got)), None)
        assert index is not None, f"{shown}\n(expected a line matching {line!r})"
        del actual[index]
    if not any("Traceback" in line for line in expected):
        assert "Traceback (most recent call last)" not in stdout + stderr, shown


class Page:
    """Runs one page's blocks in order, in one directory, with its background processes."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path / "work"
        self.cwd.mkdir()
        home = tmp_path / "home"
        home.mkdir()
        scratch = tmp_path / "tmp"  # its own TMPDIR: its nodes' per-user work directories
        scratch.mkdir()
        env = dict(os.environ, HOME=str(home), TMPDIR=str(scratch), PYTHONUNBUFFERED="1")
        env.pop("DISCORO_SECRET", None)
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
        self.env = env
        self.background: list[tuple[subprocess.Popen[str], list[str]]] = []
        self.timeout = BLOCK_TIMEOUT  # for one foreground block

    def command(self, block: Block) -> list[str]:
        if block.lang == "python":
            program = self.cwd / f"block_{block.line}.py"
            program.write_text(block.code)
            return [sys.executable, program.name]
        return ["bash", "-e", "-o", "pipefail", "-c", block.code]

    def run(self, block: Block) -> None:
        try:
            result = subprocess.run(
                self.command(block),
                capture_output=True,
                text=True,
                timeout=self.timeout,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"{block.where}: still running after {self.timeout:g} s (a wait without a "
                f"timeout, or a non-daemon coroutine that never ends?)\n{exc.stdout}\n{exc.stderr}"
            ) from None
        assert result.returncode == 0, (
            f"{block.where}: exit status {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        check_output(block, result.stdout, result.stderr)

    def start(self, block: Block, ready: str) -> None:
        popen = subprocess.Popen(
            self.command(block),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=self.cwd,
            env=self.env,
            start_new_session=True,  # SIGTERM reaches the shell's children too
        )
        output: list[str] = []
        self.background.append((popen, output))
        lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

        def read() -> None:
            assert popen.stdout is not None
            for line in popen.stdout:
                output.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        pattern = re.compile(ready)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            assert line is not None, f"{block.where}: never printed {ready!r}:\n{''.join(output)}"
            if pattern.search(line):
                break
        if block.expected is not None:  # what it printed until it was ready
            check_output(block, "", "".join(output))

    def stop(self) -> None:
        for popen, _ in reversed(self.background):
            if popen.poll() is None:
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(5)
            if popen.stdout is not None:
                popen.stdout.close()


# -- the pages ------------------------------------------------------------------------------


def page_ids() -> list[str]:
    return [str(page.relative_to(ROOT)) for page in pages()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", page_ids())
def test_page_code_blocks_run(page: str, tmp_path: Path) -> None:
    runner = Page(tmp_path)
    try:
        for block in parse(ROOT / page):
            if block.lang not in ("python", "sh"):
                continue
            kind, value = block.directive or ("run", "")
            if kind == "not-run":
                continue
            if kind == "background":
                runner.start(block, value)
            else:
                runner.run(block)
    finally:
        runner.stop()


def test_blocks_not_run_are_few_and_say_why() -> None:
    """Lists what is not run (pytest -s shows it); each has a reason; most blocks run."""
    runnable = [block for block in all_blocks() if block.lang in ("python", "sh")]
    skipped = [block for block in runnable if block.directive and block.directive[0] == "not-run"]
    print(f"\n{len(runnable) - len(skipped)} code blocks run, {len(skipped)} not run:")
    for block in skipped:
        print(f"  {block.where}: {block.directive[1] if block.directive else ''}")
    assert all(block.directive and block.directive[1] for block in skipped)
    assert len(skipped) * 4 <= len(runnable), "most code blocks must run"


def test_directives_sit_right_before_a_fence() -> None:
    """A directive that is not right before a fence would be ignored: refuse it."""
    for page in pages():
        lines = page.read_text().splitlines()
        for number, line in enumerate(lines):
            match = DIRECTIVE.match(line.strip())
            if match:
                following = next((text for text in lines[number + 1 :] if text.strip()), "")
                assert FENCE.match(following), (
                    f"{page}:{number + 1}: a {match[1]} directive must come right before a fence"
                )


NEWCOMER_COMMANDS = ["pip install -e . && python examples/demo.py\n", "bash scripts/test.sh\n"]


def test_readme_keeps_its_two_newcomer_commands() -> None:
    """The README's first two blocks install and run the demo, and run the whole suite."""
    blocks = [block for block in parse(ROOT / "README.md") if block.lang == "sh"]
    assert [block.code for block in blocks[:2]] == NEWCOMER_COMMANDS
    # they are not run here (one installs, one is this test run), but what they name exists
    assert (ROOT / "examples" / "demo.py").is_file()
    assert "pytest" in (ROOT / "scripts" / "test.sh").read_text()


# -- the checker itself ---------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text)
    return path


def test_parse_finds_directives_and_output_blocks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "intro\n\n<!-- not-run: needs another host -->\n```sh\ndiscoronode -i 10.0.0.1\n```\n\n"
        "```python\nprint(1)\n```\n\n```text\n1\n```\n\n"
        "<!-- background: ready -->\n```sh\nserve\n```\n\n```json\n{}\n```\n",
    )
    blocks = parse(path)
    assert [(b.lang, b.directive) for b in blocks] == [
        ("sh", ("not-run", "needs another host")),
        ("python", None),
        ("sh", ("background", "ready")),
        ("json", None),
    ]
    assert blocks[1].expected == ["1"]
    assert blocks[0].expected is None


def test_parse_refuses_a_fence_without_language(tmp_path: Path) -> None:
    path = write(tmp_path, "```\nprint(1)\n```\n")
    with pytest.raises(AssertionError, match="must name its language"):
        parse(path)


def test_output_check_catches_missing_wrong_and_unexpected_output() -> None:
    block = Block(ROOT / "README.md", 1, "python", "print(49)\n")
    with pytest.raises(AssertionError, match="add a text block"):
        check_output(block, "49\n", "")
    block.expected = ["49"]
    check_output(block, "49\n", "")
    with pytest.raises(AssertionError, match="expected a line matching"):
        check_output(block, "48\n", "")
    block.expected = ["... working on 1", "49"]
    check_output(block, "49\n", "2026 - discoro - [127.0.0.1:4000] working on 1\n")
    with pytest.raises(AssertionError, match="expected a line matching"):
        check_output(block, "49\n", "working on 2\n")
    block.expected = ["49", "49"]  # each expected line takes its own output line
    with pytest.raises(AssertionError, match="expected a line matching"):
        check_output(block, "49\n", "")
    block.expected = ["49"]
    with pytest.raises(AssertionError):
        check_output(block, "49\n", "Traceback (most recent call last):\n  boom\n")


def test_page_runner_checks_exit_status_and_background_output(tmp_path: Path) -> None:
    runner = Page(tmp_path)
    page = tmp_path / "page.md"
    try:
        failing = Block(page, 1, "sh", "echo partial; exit 3\n")
        with pytest.raises(AssertionError, match="exit status 3"):
            runner.run(failing)
        runner.timeout = 0.5
        with pytest.raises(AssertionError, match=r"still running after 0\.5 s"):
            runner.run(Block(page, 3, "sh", "sleep 30\n"))
        runner.timeout = BLOCK_TIMEOUT
        server = Block(page, 5, "sh", "echo hello\necho ready\nexec sleep 30\n")
        server.expected = ["hello"]
        runner.start(server, "ready")
        wrong = Block(page, 9, "sh", "echo hi\necho ready\nexec sleep 30\n")
        wrong.expected = ["bye"]
        with pytest.raises(AssertionError, match="expected a line matching 'bye'"):
            runner.start(wrong, "ready")
        silent = Block(page, 13, "sh", "exit 0\n")
        with pytest.raises(AssertionError, match="never printed"):
            runner.start(silent, "ready")
    finally:
        runner.stop()
    assert all(popen.poll() is not None for popen, _ in runner.background)
