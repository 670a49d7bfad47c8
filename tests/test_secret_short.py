"""An explicit secret shorter than 16 characters is used, with one warning per process."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from discoro.net import secret as secret_module
from discoro.net.secret import resolve_secret

if TYPE_CHECKING:
    import pytest


def test_a_short_secret_logs_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secret_module, "_warned_short", False)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("discoro")
    logger.addHandler(handler)
    try:
        assert resolve_secret("sixteen chars ok") == b"sixteen chars ok"
        assert records == []
        assert resolve_secret("short") == b"short"
        assert resolve_secret(b"tiny") == b"tiny"
    finally:
        logger.removeHandler(handler)
    assert [r.levelname for r in records] == ["WARNING"]
    assert "only 5 characters long" in records[0].getMessage()
