"""``discoro.httpd``: the original ``asyncoro.httpd`` module path, so ``from discoro import
httpd; httpd.HTTPServer(...)`` runs as it did (reference 6, later versions D1 and D6). The
implementation lives in `discoro.web`; importing it installs the network layer and the status
page (their packages do), as touching any export of the facade does."""

from __future__ import annotations

from discoro.web._httpserver import HTTPServer as HTTPServer

__all__ = ["HTTPServer"]
