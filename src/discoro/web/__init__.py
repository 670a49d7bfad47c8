"""The status web page (design decision 11): cluster, node and process pages over a JSON API.

``Scheduler(http_port=...)`` (or ``discoro --http PORT``) serves it; a client serves the same
page for its own computation with ``discoro.httpd.HTTPServer`` (`_httpserver`: a view built
from status messages, plus the original JSON routes). Importing this package
only tells the scheduler how to start the page; aiohttp is imported when a page is served,
so server processes never load it.
"""

from typing import Any

from discoro.cluster.scheduler import Scheduler


def _start(scheduler: Any, port: int, addr: str, secret: bytes) -> Any:
    from discoro.web._server import start_web

    return start_web(scheduler, port, addr, secret=secret)


Scheduler.install_web(_start)
