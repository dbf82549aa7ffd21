"""The local AWS endpoint's server: moto's application, answering one request at a time.

``python -m moto.server`` answers each request on a thread of its own, and moto's backends are not safe for that: a
Kinesis ``GetRecords`` that walks a shard's records while a ``PutRecords`` on another thread appends to them fails with
"OrderedDict mutated during iteration" (an HTTP 500), a few times a minute at the speed benchmark's 5,000 records a
second. AWS itself has no such failure, so the endpoint should not have it either: connections are still served on
threads of their own (a client's idle keep-alive connection blocks no one), but moto's application handles one request
at a time.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class OneAtATime:
    """A WSGI application that lets ``app`` handle one request at a time, its response read whole under the lock."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self._lock:
            response = self.app(environ, start_response)
            try:
                return list(response)
            finally:
                close = getattr(response, "close", None)
                if close is not None:
                    close()


def serve(host: str, port: int) -> None:
    """Serve moto's application on ``host``:``port`` until terminated."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    os.environ.setdefault("MOTO_PORT", str(port))  # as moto's own server does: some of its URLs carry the port
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = OneAtATime(DomainDispatcherApplication(create_backend_app))
    run_simple(host, port, app, threaded=True, request_handler=MotoRequestHandler)


def main(argv: list[str] | None = None) -> None:
    """``python -m etl_lib.services.aws_server -H HOST -p PORT``."""
    parser = argparse.ArgumentParser(prog="python -m etl_lib.services.aws_server", description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    arguments = parser.parse_args(argv)
    serve(arguments.host, arguments.port)


if __name__ == "__main__":
    main()
