"""Monitoring and alerting sinks out of reach: retried with jittered backoff, then given up with one line and a row."""

from __future__ import annotations

import datetime as dt
import http.server
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py

from etl_lib.config import AlertsConfig, ServicesConfig, SinksConfig, load_config
from etl_lib.errors import ConfigError
from etl_lib.io import degraded
from etl_lib.io.degraded import SINK_FAILURES_SCHEMA, Origin, SinkFailure, SinkGuard
from etl_lib.lineage.openlineage import Emitter
from etl_lib.quality import alerts
from etl_lib.quality.engine import Evaluation, RuleResult
from etl_lib.serving.realtime import Backlog, write_hashes
from tests.ports import closed_port

PROJECT = Path(__file__).resolve().parents[2]
AT = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
ORIGIN = Origin("run-7", "speed_layer", 4)


class Flaky:
    """A sink call that raises ``error`` the first ``failures`` times."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


def guard_of(settings: SinksConfig, waits: list[float], jitter: float = 1.0) -> SinkGuard:
    return SinkGuard(settings, ORIGIN, sleep=waits.append, clock=lambda: AT, jitter=lambda: jitter)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_call_that_fails_then_succeeds_is_delivered_after_jittered_doubling_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    guard = guard_of(SinksConfig(attempts=3, first_backoff_seconds=0.1, max_backoff_seconds=0.5), waits, jitter=0.5)
    call = Flaky(2, ConnectionError("refused"))
    with caplog.at_level(logging.DEBUG):
        assert guard.send("cloudwatch", "quality metrics", call, (ConnectionError,)) is True
    assert call.calls == 3
    assert waits == [0.05, 0.1]
    assert guard.failures == []
    assert warnings_of(caplog) == []


def test_a_call_that_keeps_failing_is_given_up_with_one_warning_line_and_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waits: list[float] = []
    guard = guard_of(SinksConfig(attempts=4, first_backoff_seconds=0.1, max_backoff_seconds=0.3), waits)
    call = Flaky(10, ConnectionError("Could not connect to the endpoint URL\nsecond line"))
    with caplog.at_level(logging.DEBUG):
        delivered = guard.send("sns", "quality alert of silver/events", call, (ConnectionError,), keys=["a", "b"])
    assert delivered is False
    assert call.calls == 4
    assert waits == [0.1, 0.2, 0.3]  # doubling, capped at max_backoff_seconds
    expected = SinkFailure(
        sink="sns",
        sending="quality alert of silver/events",
        error="ConnectionError: Could not connect to the endpoint URL",
        attempts=4,
        failed_at=AT,
        origin=ORIGIN,
        keys=("a", "b"),
    )
    assert guard.failures == [expected]
    [warning] = warnings_of(caplog)
    assert warning.getMessage() == (
        "sink sns unreachable: gave up quality alert of silver/events (micro-batch 4) after 4 attempts: "
        "ConnectionError: Could not connect to the endpoint URL; the run goes on (audit/sink_failures)"
    )
    assert guard.drain() == [expected]
    assert guard.failures == []


def test_the_row_follows_the_table_schema() -> None:
    failure = SinkFailure("redis", "metrics", "TimeoutError: t", 3, AT, ORIGIN, ("c1",))
    names = [column.strip().split(" ")[0] for column in SINK_FAILURES_SCHEMA.split(", ")]
    assert dict(zip(names, failure.row(), strict=True)) == {
        "sink": "redis",
        "sending": "metrics",
        "keys": ["c1"],
        "error": "TimeoutError: t",
        "attempts": 3,
        "failed_at": AT,
        "run_id": "run-7",
        "job": "speed_layer",
        "batch_id": 4,
    }


def test_waits_are_full_jitter_below_a_doubling_bound() -> None:
    settings = SinksConfig(first_backoff_seconds=0.1, max_backoff_seconds=0.5)
    assert [degraded.backoff_seconds(settings, n, lambda: 1.0) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    assert [degraded.backoff_seconds(settings, n, lambda: 0.0) for n in range(1, 6)] == [0.0] * 5


def test_an_error_that_is_not_the_sinks_is_raised_at_once() -> None:
    waits: list[float] = []
    guard = guard_of(SinksConfig(), waits)
    call = Flaky(1, TypeError("a bug of the suite"))
    with pytest.raises(TypeError, match="a bug of the suite"):
        guard.send("cloudwatch", "quality metrics", call, (ConnectionError,))
    assert (call.calls, waits, guard.failures) == (1, [], [])


def test_a_client_that_retries_by_itself_is_called_once_and_tells_its_attempts() -> None:
    waits: list[float] = []
    guard = guard_of(SinksConfig(attempts=5), waits)
    call = Flaky(10, OSError("refused"))
    assert guard.send("openlineage", "event", call, (OSError,), client_attempts=lambda: 5) is False
    assert (call.calls, waits) == (1, [])
    assert [f.attempts for f in guard.failures] == [5]


def test_backoff_settings_are_checked_and_named() -> None:
    defaults = SinksConfig()
    assert (defaults.attempts, defaults.connect_timeout_seconds, defaults.read_timeout_seconds) == (3, 0.5, 1.0)
    with pytest.raises(ConfigError, match=r"sinks.*max_backoff_seconds \(0.01\) is below first_backoff_seconds"):
        load_config(PROJECT / "conf" / "test.yaml", ["sinks.max_backoff_seconds=0.01"])
    with pytest.raises(ConfigError, match=r"sinks.attempts"):
        load_config(PROJECT / "conf" / "test.yaml", ["sinks.attempts=0"])


def test_run_metrics_count_the_given_up_calls_per_sink() -> None:
    assert degraded.run_metrics({}) == {}
    assert degraded.run_metrics({"sns": 1, "cloudwatch": 2}) == {
        "sink_failures": 3,
        "sink_failures_cloudwatch": 2,
        "sink_failures_sns": 1,
    }


def held_evaluation() -> Evaluation:
    """A held-back evaluation (its frames are never looked at by the alerts)."""
    failing = RuleResult("qty_known", "completeness", ["qty"], "error", "warn", 0.5, 1.0, False, 1, 2, [], "1 null")
    return Evaluation(
        table="silver/events",
        results=[failing],
        score=0.0,
        threshold=0.8,
        rows=2,
        kept=None,
        quarantined=None,
        dropped_rows=0,
        quarantined_rows=0,
        held=True,
        held_rows=None,  # type: ignore[arg-type]
    )


def test_cloudwatch_and_sns_out_of_reach_are_retried_by_botocore_then_given_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    services = ServicesConfig.model_validate({"aws": {"port": closed_port()}})
    settings = AlertsConfig(
        cloudwatch_namespace="Quality", sns_topic_arn="arn:aws:sns:us-east-1:123456789012:q", local_endpoint=True
    )
    guard = SinkGuard(SinksConfig(attempts=3), ORIGIN)
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        alerts.announce(settings, services, held_evaluation(), guard)
    assert time.monotonic() - started < 3.0
    assert [(f.sink, f.attempts, f.keys) for f in guard.failures] == [
        ("cloudwatch", 3, ("FailingRows", "QualityScore", "QuarantinedRows")),
        ("sns", 3, ()),
    ]
    assert all(f.error.startswith("EndpointConnectionError: Could not connect") for f in guard.failures)
    # One line per call given up, and nothing else at warning level (botocore retries quietly).
    assert [w.getMessage() for w in warnings_of(caplog)] == [f.line for f in guard.failures]


class _Lineage(http.server.BaseHTTPRequestHandler):
    """An OpenLineage endpoint that answers 503 to the first ``unavailable`` events, then takes them."""

    unavailable = 0
    received: list[bytes] = []  # noqa: RUF012 - set per test

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).unavailable > 0:
            type(self).unavailable -= 1
            self.send_response(503)
        else:
            type(self).received.append(body)
            self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def lineage_endpoint() -> Iterator[tuple[str, type[_Lineage]]]:
    handler = type("Lineage", (_Lineage,), {"unavailable": 0, "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def emitter_to(url: str, attempts: int = 3) -> Emitter:
    overrides = ["lineage.openlineage.transport=http", f"lineage.openlineage.url={url}", f"sinks.attempts={attempts}"]
    return Emitter(load_config(PROJECT / "conf" / "test.yaml", overrides), "speed_layer", "run-7", lambda: AT)


def test_an_openlineage_endpoint_that_answers_503_gets_the_event_on_a_later_attempt(
    lineage_endpoint: tuple[str, type[_Lineage]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = lineage_endpoint
    handler.unavailable = 2
    emitter = emitter_to(url)
    with caplog.at_level(logging.DEBUG):
        emitter.emit("START", AT, "4.1.0", streaming=True)
    assert len(handler.received) == 1
    assert b'"eventType": "START"' in handler.received[0] or b'"eventType":"START"' in handler.received[0]
    assert emitter.guard.failures == []
    assert warnings_of(caplog) == []


def test_an_openlineage_endpoint_out_of_reach_is_given_up_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    emitter = emitter_to(f"http://127.0.0.1:{closed_port()}", attempts=2)
    with caplog.at_level(logging.DEBUG):
        emitter.emit("COMPLETE", AT, "4.1.0")
    [failure] = emitter.guard.failures
    assert (failure.sink, failure.sending, failure.attempts) == ("openlineage", "the COMPLETE event of speed_layer", 2)
    assert (failure.origin, failure.failed_at) == (Origin("run-7", "speed_layer"), AT)
    assert "ConnectionError" in failure.error
    # urllib3's own retries are off: they would each log a warning of their own.
    assert [w.getMessage() for w in warnings_of(caplog)] == [failure.line]


def test_a_redis_write_raises_once_redis_py_has_retried_as_configured() -> None:
    services = ServicesConfig.model_validate({"redis": {"port": closed_port()}})
    store = load_config(PROJECT / "conf" / "test.yaml").serving.realtime_store
    started = time.monotonic()
    with pytest.raises(redis_py.ConnectionError):
        write_hashes([("c1", {"customer_id": "c1"})], store, services.redis, None, SinksConfig(attempts=3))
    assert time.monotonic() - started < 2.0


def test_the_backlog_keeps_each_customers_newest_hash() -> None:
    backlog = Backlog()
    assert not backlog
    backlog.add({"a": {"updated_batch": "3", "x": "1"}, "b": {"updated_batch": "3", "x": "2"}})
    backlog.add({"a": {"updated_batch": "5", "x": "9"}})
    assert backlog.hashes == {"a": {"updated_batch": "5", "x": "9"}, "b": {"updated_batch": "3", "x": "2"}}
    assert (len(backlog), backlog.batches) == (2, [3, 5])
    backlog.clear()
    assert (len(backlog), backlog.batches) == (0, [])
