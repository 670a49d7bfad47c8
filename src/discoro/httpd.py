"""``discoro.httpd``: the original ``asyncoro.httpd`` module path, so ``from discoro import
httpd; httpd.HTTPServer(...)`` runs as it did (reference 6, later versions D1 and D6). The
implementation lives in `discoro.web`; importing this module installs the network layer and
the status page, as touching any export of the facade does."""

from __future__ import annotations

import discoro.net  # installs the network layer (importing discoro.web installs the page)
from discoro.web._httpserver import HTTPServer as HTTPServer

__all__ = ["HTTPServer"]
