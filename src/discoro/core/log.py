"""The package logger, `discoro.logger` (the seed's `asyncoro.logger`).

A `logging.Logger` named ``discoro`` at level INFO with one stream handler, so examples that
call ``logger.setLevel(logging.DEBUG)`` and ``logger.info(...)`` print without any setup.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("discoro")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
