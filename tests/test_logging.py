"""discoro's logging follows the library convention (core/log.py): the ``discoro`` logger
propagates, importing configures nothing, a program without logging set up gets one
fallback handler at the first record, and ``logging.basicConfig`` works before or after."""

from __future__ import annotations

import subprocess
import sys

from procs import SRC

# Each program prints the discoro logger's handlers (by class name) at the end on stdout;
# what is logged goes to stderr.
HANDLERS = "print(sorted(type(h).__name__ for h in discoro.logger.handlers))"


def run(program: str) -> tuple[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": SRC},
        check=True,
    )
    return result.stdout, result.stderr


def test_import_adds_no_handler_and_the_first_record_adds_the_fallback() -> None:
    stdout, stderr = run(
        f"import discoro, logging\n{HANDLERS}\n"
        "discoro.logger.info('first %s', 1)\n"
        "discoro.logger.debug('hidden at INFO')\n"
        f"{HANDLERS}\n"
    )
    assert stdout.splitlines() == ["[]", "['FallbackHandler']"]
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith(" - discoro - first 1"), stderr


def test_basic_config_before_the_first_record_gets_discoro_records_once() -> None:
    stdout, stderr = run(
        "import discoro, logging\n"
        "logging.basicConfig(format='BC %(name)s %(levelname)s %(message)s')\n"
        "discoro.logger.warning('via root')\n"
        f"{HANDLERS}\n"
    )
    assert stderr.splitlines() == ["BC discoro WARNING via root"]
    assert stdout.splitlines() == ["[]"]


def test_basic_config_after_the_fallback_was_added_still_shows_each_record_once() -> None:
    stdout, stderr = run(
        "import discoro, logging, sys\n"
        "discoro.logger.info('before')\n"
        "logging.basicConfig(format='BC %(message)s', stream=sys.stderr)\n"
        "discoro.logger.info('after')\n"
        f"{HANDLERS}\n"
    )
    lines = stderr.splitlines()
    assert len(lines) == 2 and lines[0].endswith(" - discoro - before"), stderr
    assert lines[1] == "BC after"
    assert stdout.splitlines() == ["['FallbackHandler']"]


def test_set_level_on_the_discoro_logger_filters_its_records() -> None:
    _, stderr = run(
        "import discoro, logging\n"
        "discoro.logger.setLevel(logging.WARNING)\n"
        "discoro.logger.info('hidden')\n"
        "discoro.logger.warning('shown')\n"
    )
    assert [line.rsplit(" - ", 1)[1] for line in stderr.splitlines()] == ["shown"]


def test_discoros_own_handler_on_the_root_does_not_silence_the_fallback() -> None:
    """A server's capture of remote output sits on the root logger while a computation
    runs; the server's own discoro lines must still show on its stderr."""
    stdout, stderr = run(
        "import discoro, logging\n"
        "from discoro.core.log import mark_internal\n"
        "logging.getLogger().addHandler(mark_internal(logging.NullHandler()))\n"
        "discoro.logger.info('still shown')\n"
        f"{HANDLERS}\n"
    )
    assert stderr.endswith(" - discoro - still shown\n"), stderr
    assert stdout.splitlines() == ["['FallbackHandler']"]
