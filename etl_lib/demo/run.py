"""The demo: every job of the suite, in order, on one Spark session, with progress and a summary.

The embedded default (``conf/local.yaml``) needs no service: the speed layer reads the landing folder the
producer fills. Running it again is safe: events are replayed once, and each job writes only what is new.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etl_lib.config import SuiteConfig, is_uri, validate_config
from etl_lib.core.run import JobResult

#: The day after the bundled extract ends: the batch layer's gold tables are computed as of it.
DEMO_PROCESS_DATE = "2011-12-10"
#: The extract's columns the producer reads, by the entity's names.
ORIGINAL_COLUMNS = {
    "invoice_no": "InvoiceNo",
    "stock_code": "StockCode",
    "quantity": "Quantity",
    "invoice_date": "InvoiceDate",
    "unit_price": "UnitPrice",
    "customer_id": "CustomerID",
}
#: The demo's plan: phases one after another; in a phase, lanes side by side, each on a session of its
#: own, running its steps in order. The speed layer reads none of the batch layer's tables, and both
#: spend much of their time on small Delta commits and the driver: side by side they keep both cores busy.
#: Training reads the batch layer's tables and works in scikit-learn on the driver; it promotes its models
#: as it ends, with nothing beside it that resolves a champion, and scoring follows it in its lane; the
#: reconciliation (which uses no model) runs beside the two.
PHASES: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("batch_layer",), ("produce", "speed_layer")),
    (("train_models", "score"), ("reconcile",)),
    (("publish_products",),),
)
#: Every step, in the order of the plan ("produce" fills the landing folder the speed layer reads).
STEPS = tuple(step for phase in PHASES for lane in phase for step in lane)


@dataclass
class Step:
    """One step of the demo: what it wrote and how long it took."""

    name: str
    seconds: float
    rows_written: int
    detail: str
    result: JobResult | None = None


@dataclass
class DemoRun:
    """Everything the demo did, for its summary and report."""

    config: SuiteConfig
    steps: list[Step] = field(default_factory=list)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def metrics(self, job: str) -> dict[str, Any]:
        """The metrics of the demo's run of ``job`` (empty if it did not run)."""
        for step in self.steps:
            if step.name == job and step.result is not None:
                return dict(step.result.metrics)
        return {}


def demo_config(config: SuiteConfig) -> SuiteConfig:
    """The configuration the demo's jobs run with.

    The batch layer runs as of the day after the data ends; the speed layer drains what its stream holds.
    """
    data = config.model_dump(mode="json")
    data["run"]["process_date"] = data["run"]["process_date"] or DEMO_PROCESS_DATE
    data["run"]["available_now"] = True
    # Half the replayed files per micro-batch, so that the report shows the stream batch by batch.
    data["speed"]["files"]["max_files_per_trigger"] = data["speed"]["files"]["max_files_per_trigger"] or 5
    return validate_config(data)


def _detail(result: JobResult) -> str:
    metrics = result.metrics
    keys = {
        "train_models": ("anomaly_model_version", "churn_model", "churn_cv_roc_auc", "telco_cv_roc_auc"),
        "score": ("anomalies", "churn_risk_High"),
        "reconcile": ("verdict",),
        "publish_products": ("products_published",),
    }.get(result.job, ())
    tables = [f"{len(result.writes)} tables"] if result.writes else []
    return ", ".join(tables + [f"{key} {metrics[key]}" for key in keys if key in metrics])


def replay_data(config: SuiteConfig) -> Path:
    """What the producer replays: the batch layer's own Online Retail extract, else the bundled file.

    The extract is used when it is a local Parquet landing folder with the extract's own column names, so
    that the batch and the speed layer see the same purchases and reconcile.
    """
    from etl_lib.config import FileSourceConfig
    from etl_lib.producer.replay import DATA

    source = config.sources.get("online_retail")
    if (
        isinstance(source, FileSourceConfig)
        and source.format == "parquet"
        and not is_uri(source.path)
        and all(source.columns.get(k) == v for k, v in ORIGINAL_COLUMNS.items())
    ):
        return Path(source.path)
    return DATA


def _produce(config: SuiteConfig, events: int) -> Step:
    from etl_lib.producer.replay import replay

    landing = Path(config.speed.files.path)
    started = time.monotonic()
    if Path(config.lakehouse.table_path("bronze", "events"), "_delta_log").is_dir() or (
        config.speed.source == "files" and landing.is_dir() and any(landing.glob("events-*.jsonl"))
    ):
        if config.speed.source == "files":
            landing.mkdir(parents=True, exist_ok=True)  # its files may have been cleared since; bronze has them
        return Step("produce", 0.0, 0, "events were replayed by an earlier demo; not again")
    target = config.speed.source
    report = replay(config, target, limit=events, batch_size=max(1, events // 10), data=replay_data(config))
    where = landing if target == "files" else target
    return Step("produce", time.monotonic() - started, report.events, f"{report.events:,} events to {where}")


def _job_step(name: str, config: SuiteConfig, session: Any) -> Step:
    from etl_lib.runtime.runner import run_job

    started = time.monotonic()
    result = run_job(name, config, session)
    rows = sum(write.rows_written for write in result.writes)
    return Step(name, time.monotonic() - started, rows, _detail(result), result)


def load_orders_database(config: SuiteConfig, say: Callable[[str], None]) -> None:
    """Fill the local PostgreSQL server's orders table from the bundled extract, once.

    Only JDBC sources that point at the local server (``services.postgres``) and whose table is missing or
    empty are loaded; anything else is the user's own database and is left alone.
    """
    from psycopg import sql

    from etl_lib.config import JdbcSourceConfig
    from etl_lib.producer.replay import DATA
    from etl_lib.services.postgres import PostgresService

    service = PostgresService(config.services)
    for name, source in sorted(config.sources.items()):
        if not isinstance(source, JdbcSourceConfig) or source.url != config.services.postgres.jdbc_url:
            continue
        schema, _, table = source.source_table.rpartition(".")
        with service.connect() as connection:
            found = connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (schema or "public", table),
            ).fetchone()[0]
            count = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema or "public", table))
            rows = connection.execute(count).fetchone()[0] if found else 0
        if rows:
            say(f"source {name}: {source.source_table} already holds {rows:,} rows")
            continue
        import pyarrow.parquet as pq

        loaded = service.load_order_lines(pq.read_table(DATA), table=table)
        say(f"source {name}: loaded {loaded:,} rows of the bundled extract into {source.source_table}")


def run_demo(
    config: SuiteConfig,
    events: int,
    report: Path,
    say: Callable[[str], None] = print,
    spark: Any = None,
) -> DemoRun:
    """Run every step, print progress and the summary, write the HTML report; returns what happened.

    Args:
        config: the environment (the embedded default for ``make demo``).
        events: how many events the producer replays for the speed layer.
        report: where the HTML report goes.
        say: where progress lines go.
        spark: a session to use (built from ``config`` when None).

    Raises:
        EtlSuiteError: whatever a job raises; the demo stops at the first failing step.
    """
    from etl_lib.demo.report import summary_lines, write_report
    from etl_lib.ml import tracking
    from etl_lib.runtime.dag import child_session
    from etl_lib.runtime.session import build_session

    config = demo_config(config)
    run = DemoRun(config)
    say(f"demo: lakehouse {config.lakehouse.root}, {events:,} replayed events, report {report}")
    load_orders_database(config, say)
    # The store is created once, here, while Spark starts (a few seconds each): the layers beside each other
    # must not both create it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="demo-mlflow") as pool:
        store = pool.submit(tracking.use, config.ml)
        session = spark or build_session(config.spark)
        store.result()
    done: dict[str, Step] = {}

    def run_lane(lane: tuple[str, ...], lane_session: Any) -> None:
        for name in lane:
            number = f"[{STEPS.index(name) + 1}/{len(STEPS)}]"
            say(f"{number} {name} ...")
            step = _produce(config, events) if name == "produce" else _job_step(name, config, lane_session)
            say(f"{number} {name:<17} {step.rows_written:>10,} rows written {step.seconds:7.1f} s  {step.detail}")
            done[name] = step

    for phase in PHASES:
        if len(phase) == 1:
            run_lane(phase[0], session)
        else:
            with ThreadPoolExecutor(max_workers=len(phase), thread_name_prefix="demo") as pool:
                lanes = [pool.submit(run_lane, lane, child_session(session)) for lane in phase]
                for lane in lanes:
                    lane.result()  # the first failure is raised once the phase has stopped
        run.steps.extend(done[name] for lane in phase for name in lane)
    for line in summary_lines(run):
        say(line)
    write_report(run, report)
    say(f"report: {report}")
    return run
