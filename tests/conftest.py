"""Shared test fixtures: the in-process kernel is ended once the whole session is done."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from discoro import AsynCoro


@pytest.fixture(scope="session", autouse=True)
def _end_kernel_after_session() -> Iterator[None]:
    yield
    kernel = AsynCoro._existing_instance()  # type: ignore[attr-defined]
    if kernel is not None:
        kernel.terminate()
