"""The local AWS endpoint lets moto's application answer one request at a time, whatever the threads serving them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from etl_lib.services.aws_server import OneAtATime


class Recording:
    """A WSGI application that notes how many requests it handles at once and streams its answer in parts."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.closed = 0
        self._count = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        start_response("200 OK", [("Content-Type", "text/plain")])
        application = self

        class Body:
            def __iter__(self) -> Any:
                for part in (b"one ", b"answer"):
                    time.sleep(0.02)  # the answer is produced while another request may come in
                    yield part

            def close(self) -> None:
                with application._count:
                    application.inside -= 1
                    application.closed += 1

        return Body()


def test_requests_on_many_threads_reach_the_application_one_at_a_time_and_get_their_whole_answer() -> None:
    app = Recording()
    served = OneAtATime(app)
    answers: list[bytes] = []

    def request() -> None:
        answers.append(b"".join(served({"REQUEST_METHOD": "GET"}, lambda status, headers: None)))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [b"one answer"] * 8
    assert app.most_inside == 1
    assert app.closed == 8  # each answer closed, as WSGI asks of whoever reads it
