"""``discoro.asyncfile``: the original's ``asyncoro.asyncfile`` module (reference 1.13).

Ported programs change ``from asyncoro import asyncfile`` to ``from discoro import asyncfile``
(or reach it as ``asyncoro.asyncfile`` after ``import discoro as asyncoro``) and keep using
``asyncfile.AsyncFile``, ``asyncfile.AsyncPipe`` and ``asyncfile.Popen``. The code lives in
``discoro.core.asyncfile`` and ``discoro.core.asyncpipe``.
"""

from __future__ import annotations

from discoro.core.asyncfile import AsyncFile as AsyncFile
from discoro.core.asyncpipe import AsyncPipe as AsyncPipe
from discoro.core.asyncpipe import Popen as Popen
from discoro.core.asyncpipe import pipe as pipe

__all__ = ["AsyncFile", "AsyncPipe", "Popen", "pipe"]
