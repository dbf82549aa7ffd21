"""The ``etl-suite`` command (also ``python -m etl_lib``) and the shared entry of ``jobs/*.py``.

Exit codes: 0 success, 1 a job or service failed, 2 the command line or the configuration is wrong
(reported before any Spark session starts).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

import yaml

from etl_lib import __version__
from etl_lib.config import SuiteConfig, load_config, redacted
from etl_lib.config.secrets import install_log_redaction, scrub
from etl_lib.errors import EtlSuiteError, UsageError, explain
from etl_lib.runtime.registry import JOBS, JobSpec, get_job

log = logging.getLogger("etl_lib")


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every usage error ends the same way (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", metavar="PATH", help="configuration file (default: conf/local.yaml)")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one configuration key, e.g. --set lakehouse.root=/tmp/lake (repeatable)",
    )


def job_parser(spec: JobSpec, prog: str) -> argparse.ArgumentParser:
    """Parser of one job's arguments: the config options plus the job's own."""
    parser = _Parser(prog=prog, description=spec.summary)
    _add_config_options(parser)
    for option in spec.options:
        if option.switch:
            parser.add_argument(option.flag, action="store_true", dest=option.key, help=option.help)
        else:
            parser.add_argument(option.flag, dest=option.key, help=option.help, metavar="VALUE")
    return parser


def _job_overrides(spec: JobSpec, namespace: argparse.Namespace) -> list[str]:
    overrides = list(namespace.overrides)
    for option in spec.options:
        value = getattr(namespace, option.key)
        if option.switch and value:
            overrides.append(f"{option.key}=true")
        elif not option.switch and value is not None:
            overrides.append(f"{option.key}={value}")
    return overrides


def _run(spec: JobSpec, argv: Sequence[str], prog: str) -> int:
    namespace = job_parser(spec, prog).parse_args(list(argv))
    config = load_config(namespace.conf, _job_overrides(spec, namespace))
    from etl_lib.runtime.runner import run_job

    result = run_job(spec.name, config)
    print(result.summary())
    return 0


def _services(namespace: argparse.Namespace) -> int:
    from etl_lib.services.registry import get_services

    config = load_config(namespace.conf, namespace.overrides)
    failed = False
    for service in get_services(config.services, namespace.names):
        if namespace.action == "up":
            status = service.up()
        elif namespace.action == "down":
            service.down()
            status = service.status()
        else:
            status = service.status()
        state = "running" if status.running else (status.detail or "stopped")
        pid = "-" if status.pid is None else str(status.pid)
        print(f"{status.name:<9} {state:<24} pid {pid:<8} {status.endpoint}")
        failed = failed or (namespace.action == "up" and not status.running)
    return 1 if failed else 0


def _config_show(namespace: argparse.Namespace) -> int:
    config: SuiteConfig = load_config(namespace.conf, namespace.overrides)
    print(f"# {config.source_file} (secrets redacted)")
    print(yaml.safe_dump(redacted(config), sort_keys=False), end="")
    return 0


def _tables(namespace: argparse.Namespace) -> int:
    from etl_lib.io.portable import duckdb_checksum, list_tables

    config = load_config(namespace.conf, namespace.overrides)
    tables = list_tables(config.lakehouse.root)
    engines = "the deltalake package" + (", checksums by DuckDB" if namespace.checksum else "")
    print(f"Delta tables under {config.lakehouse.root} (read with {engines}):")
    if not tables:
        print("  (none yet)")
    for info in tables:
        name = f"{info.layer}/{info.table}"
        line = f"  {name:<32} {info.rows:>12,} rows  version {info.version:>4}  last {info.last_operation}"
        if namespace.checksum:
            line += f"  checksum {duckdb_checksum(info.path)[1]:x}"
        print(line)
    return 0


def _produce(namespace: argparse.Namespace) -> int:
    from etl_lib.producer.replay import replay

    config = load_config(namespace.conf, namespace.overrides)
    target = namespace.to or config.speed.source
    report = replay(
        config,
        target,
        limit=namespace.limit,
        rate=namespace.rate,
        malformed=namespace.malformed,
        batch_size=namespace.batch_size,
    )
    rate = report.events / report.seconds if report.seconds else float("inf")
    print(
        f"produced {report.events:,} events and {report.malformed:,} malformed records to {report.target} "
        f"in {report.seconds:.1f}s ({rate:,.0f} events/s)"
    )
    return 0


def _quality(namespace: argparse.Namespace) -> int:
    if namespace.action == "replay":
        if not namespace.table:
            raise UsageError("etl-suite quality replay: --table layer/name is required")
        spec = get_job("quality_replay")
        arguments = ["--table", namespace.table]
        if namespace.conf:
            arguments += ["--conf", namespace.conf]
        for override in namespace.overrides:
            arguments += ["--set", override]
        return _run(spec, arguments, prog="etl-suite quality replay")
    from etl_lib.quality.report import load_results, report

    config = load_config(namespace.conf, namespace.overrides)
    print(report(load_results(config.lakehouse.root), namespace.run_id))
    return 0


def _lineage(namespace: argparse.Namespace) -> int:
    from etl_lib.lineage.query import downstream, load_events, render, upstream

    config = load_config(namespace.conf, namespace.overrides)
    found = load_events(config.lakehouse.root)
    if not any(e["dataset"] == namespace.table for e in found):
        print(f"no lineage recorded for {namespace.table} under {config.lakehouse.root}")
        return 1
    if namespace.direction == "upstream":
        print(render(upstream(found, namespace.table), "<-"))
    else:
        print(render(downstream(found, namespace.table), "->"))
    return 0


def _serve(namespace: argparse.Namespace) -> int:
    import json

    from etl_lib.serving.realtime import lookup

    config = load_config(namespace.conf, namespace.overrides)
    source, found = lookup(config, namespace.customer_id)
    if found is None:
        print(f"customer {namespace.customer_id} is not in the real-time store nor in the speed layer's views")
        return 1
    print(json.dumps({"source": source, "customer": found}, indent=2, sort_keys=True))
    return 0


def _catalog(namespace: argparse.Namespace) -> int:
    from etl_lib.mesh.listing import describe, latest_products, read_rows, render

    config = load_config(namespace.conf, namespace.overrides)
    if namespace.action == "list":
        print(render(latest_products(config.lakehouse.root, namespace.domain), config.lakehouse.root))
        return 0
    if not namespace.product:
        raise UsageError(f"etl-suite catalog {namespace.action}: name the product, as domain.product")
    if namespace.action == "show":
        print(describe(config, namespace.product, namespace.consumer))
        return 0
    if not namespace.consumer:
        raise UsageError("etl-suite catalog read: --as CONSUMER is required (reading is granted per consumer)")
    for row in read_rows(config, namespace.product, namespace.consumer, namespace.limit):
        print(row)
    return 0


def _demo(namespace: argparse.Namespace) -> int:
    from pathlib import Path

    from etl_lib.demo.run import run_demo

    config = load_config(namespace.conf, namespace.overrides)
    report = Path(namespace.report).resolve()
    run_demo(config, events=namespace.events, report=report)
    return 0


def _version(_: argparse.Namespace) -> int:
    from etl_lib.runtime.stack import active_line

    line = active_line()
    print(
        f"etl-suite {__version__}  line {line.name}: "
        f"Spark {line.pyspark}, Delta {line.delta_spark}, Scala {line.scala_binary}"
    )
    return 0


def _jobs(_: argparse.Namespace) -> int:
    width = max(len(name) for name in JOBS)
    for name, spec in sorted(JOBS.items()):
        print(f"{name:<{width}}  {spec.summary}")
    return 0


# One piece, longer than 60 lines: the whole command line declared in the order `--help` shows it.
def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; ``run`` takes the rest of the line and hands it to the job's parser."""
    parser = _Parser(prog="etl-suite", description="Lakehouse batch and streaming jobs on Spark and Delta.")
    parser.add_argument("--version", action="version", version=f"etl-suite {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a job: etl-suite run JOB [--conf PATH] [--set KEY=VALUE ...]")
    run.add_argument("job", help=f"one of: {', '.join(sorted(JOBS))}")
    run.add_argument("job_args", nargs=argparse.REMAINDER)

    commands.add_parser("jobs", help="list the jobs").set_defaults(handler=_jobs)
    commands.add_parser("version", help="suite, Spark and Delta versions").set_defaults(handler=_version)

    services = commands.add_parser("services", help="start, stop or check the local services")
    services.add_argument("action", choices=["up", "down", "status"])
    services.add_argument(
        "names", nargs="*", metavar="SERVICE", help="kafka, postgres, aws, redis, spark (default: all)"
    )
    _add_config_options(services)
    services.set_defaults(handler=_services)

    produce = commands.add_parser("produce", help="replay the Online Retail purchases as events into a stream")
    produce.add_argument("--to", choices=["files", "kafka", "kinesis"], help="default: speed.source")
    produce.add_argument(
        "--rate", type=float, metavar="N", help="at most N records a second (default: as fast as it goes)"
    )
    produce.add_argument("--limit", type=int, metavar="N", help="stop after N events (default: all, about 800,000)")
    produce.add_argument("--malformed", type=int, default=0, metavar="N", help="also send N bad records, spread out")
    produce.add_argument("--batch-size", type=int, default=1000, metavar="N", help="records per send (default 1000)")
    _add_config_options(produce)
    produce.set_defaults(handler=_produce)

    quality = commands.add_parser("quality", help="quality results (report) and quarantined rows (replay)")
    quality.add_argument("action", choices=["report", "replay"])
    quality.add_argument("--run-id", help="report this run (default: the latest)")
    quality.add_argument("--table", help="replay this table's quarantine, as layer/name")
    _add_config_options(quality)
    quality.set_defaults(handler=_quality)

    lineage = commands.add_parser("lineage", help="what a table was made from (upstream) or feeds (downstream)")
    lineage.add_argument("direction", choices=["upstream", "downstream"])
    lineage.add_argument("table", help="layer/name, e.g. gold/customer_features")
    _add_config_options(lineage)
    lineage.set_defaults(handler=_lineage)

    serve = commands.add_parser("serve", help="a customer's latest metrics, from Redis or else the Delta views")
    serve.add_argument("what", choices=["customer"])
    serve.add_argument("customer_id", metavar="CUSTOMER_ID")
    _add_config_options(serve)
    serve.set_defaults(handler=_serve)

    catalog = commands.add_parser("catalog", help="the data products of the mesh: list, show, read as a consumer")
    catalog.add_argument("action", choices=["list", "show", "read"])
    catalog.add_argument("product", nargs="?", metavar="DOMAIN.PRODUCT", help="for show and read")
    catalog.add_argument("--domain", help="list only this domain's products")
    catalog.add_argument("--as", dest="consumer", metavar="CONSUMER", help="the consumer reading (read, show)")
    catalog.add_argument("--limit", type=int, default=10, metavar="N", help="rows read shows (default 10)")
    _add_config_options(catalog)
    catalog.set_defaults(handler=_catalog)

    demo = commands.add_parser("demo", help="run every job on the configured lakehouse; summary and HTML report")
    demo.add_argument(
        "--events", type=int, default=10_000, metavar="N", help="events the speed layer gets (default 10,000)"
    )
    demo.add_argument(
        "--report", default=".work/demo/report.html", metavar="PATH", help="the HTML report (default: %(default)s)"
    )
    _add_config_options(demo)
    demo.set_defaults(handler=_demo)

    tables = commands.add_parser("tables", help="list the lakehouse's Delta tables, read without Spark")
    tables.add_argument("--checksum", action="store_true", help="also a checksum of each table's rows (DuckDB)")
    _add_config_options(tables)
    tables.set_defaults(handler=_tables)

    config = commands.add_parser("config", help="show the resolved configuration (secrets redacted)")
    config.add_argument("action", choices=["show"])
    _add_config_options(config)
    config.set_defaults(handler=_config_show)
    return parser


def _guarded(action: Callable[[], int]) -> int:
    try:
        return action()
    except EtlSuiteError as error:
        print(f"error: {scrub(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - reported in full and turned into a failing exit code
        print(scrub(traceback.format_exc()), file=sys.stderr, end="")
        # The trace is for whoever debugs; the last line says in one sentence what went wrong.
        print(f"error: {scrub(explain(error))}", file=sys.stderr)
        return 1


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``etl-suite``."""
    _configure_logging()
    arguments = list(sys.argv[1:] if argv is None else argv)

    def dispatch() -> int:
        namespace = build_parser().parse_args(arguments)
        if namespace.command == "run":
            spec = get_job(namespace.job)
            return _run(spec, namespace.job_args, prog=f"etl-suite run {spec.name}")
        handler: Callable[[argparse.Namespace], int] = namespace.handler
        return handler(namespace)

    return _guarded(dispatch)


def job_main(job: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jobs/<job>.py`` (spark-submit, Glue, EMR): the same as ``etl-suite run <job>``."""
    _configure_logging()
    arguments = list(sys.argv[1:] if argv is None else argv)
    prog = f"jobs/{job}.py"

    def run() -> int:
        from etl_lib.deploy.glue_args import is_glue_invocation, suite_arguments

        spec = get_job(job)
        given = arguments
        if is_glue_invocation(arguments):
            # Started by AWS Glue: its own arguments beside ours, and ours under Glue-safe names.
            given = suite_arguments(
                [prog, *arguments], {opt.flag.removeprefix("--"): opt.switch for opt in spec.options}
            )
        return _run(spec, given, prog=prog)

    return _guarded(run)
