"""The user guide and API reference build with warnings as errors (``mkdocs build --strict``).

A broken link or anchor, a page missing from the nav, or a docstring that mkdocstrings cannot
render fails here, so the README's test command catches it. The site goes to a temporary
folder; nothing is written into the checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from procs import SRC

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_docs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    env = dict(os.environ, NO_COLOR="1")
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    reference = (site / "api" / "index.html").read_text()
    # the reference really holds the public API, rendered from the docstrings
    for name in ("Computation", "Coro", "Scheduler", "local_cluster", "MonitorException"):
        assert f'id="discoro.{name}"' in reference, name


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").rglob("*.md"):
        assert str(page.relative_to(ROOT / "docs")) in nav, page


def test_readme_links_point_at_files_that_exist() -> None:
    """mkdocs checks the links inside docs/; the README is outside it, so check it here."""
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    assert local, "the README links to the docs"
    for target in local:
        assert (ROOT / target).exists(), target
