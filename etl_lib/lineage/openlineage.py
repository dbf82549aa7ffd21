"""OpenLineage run events for every job run: START when it begins, COMPLETE or FAIL when it ends.

One pair per run, also for a streaming job (its per-batch offsets live in ``audit/stream_progress``), so
a stream does not flood the lineage backend. Events go to a JSON-lines file by default, or to an HTTP
endpoint (Marquez, say), through the OpenLineage Python client. An HTTP endpoint is a monitoring sink: an event
it does not take is retried as ``sinks`` says, then given up (:mod:`etl_lib.io.degraded`), never raised.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from etl_lib import __version__
from etl_lib.config import OpenLineageConfig, SuiteConfig, secret_from_env, secrets
from etl_lib.core.run import utc_now
from etl_lib.io.degraded import Origin, SinkGuard

PRODUCER = f"https://github.com/lakehouse-etl-suite/etl-suite/tree/{__version__}"


def dataset_address(name: str, root: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a dataset the suite knows as ``name``."""
    in_lakehouse = re.match(r"^(bronze|silver|gold|audit|mesh)/", name)
    location = f"{root.rstrip('/')}/{name}" if in_lakehouse else name
    if location.startswith("jdbc:"):
        match = re.match(r"^jdbc:(\w+)://([^/]+)/([^#?]+)#(.+)$", location)
        if match:
            return f"{match.group(1)}://{match.group(2)}", f"{match.group(3)}.{match.group(4)}"
    if location.startswith("kafka:"):
        servers, _, topic = location.removeprefix("kafka:").rpartition("/")
        return f"kafka://{servers}", topic
    if location.startswith("kinesis:"):
        return "kinesis", location.removeprefix("kinesis:")
    if location.startswith("files:"):
        location = location.removeprefix("files:")
    match = re.match(r"^([a-z][a-z0-9+.-]*)://([^/]*)(/.*)?$", location)
    if match:
        return f"{match.group(1)}://{match.group(2)}", (match.group(3) or "/").lstrip("/")
    return "file", location


def openlineage_run_id(run_id: str) -> str:
    """OpenLineage wants a UUID: the run id when it is one, else a UUID derived from it (always the same)."""
    try:
        return str(uuid.UUID(run_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"etl-suite-run:{run_id}"))


class Emitter:
    """Emits the run events of one job run (nothing when the transport is ``none``)."""

    def __init__(self, config: SuiteConfig, job: str, run_id: str, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.config = config
        self.settings: OpenLineageConfig = config.lineage.openlineage
        self.root = config.lakehouse.root
        self.job = job
        self.run_id = openlineage_run_id(run_id)
        #: Events the HTTP endpoint did not take are given up here; the caller records them.
        self.guard = SinkGuard(config.sinks, Origin(run_id, job), clock=clock)
        self.client = self._client()

    def _client(self) -> Any:
        from openlineage.client import OpenLineageClient

        settings = self.settings
        if settings.transport == "none":
            return None
        if settings.transport == "http":
            from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport

            key = None
            if settings.api_key_secret:
                key = secrets.resolve(settings.api_key_secret, self.config, "lineage.openlineage.api_key_secret")
            elif settings.api_key_env:
                key = secret_from_env(settings.api_key_env)
            # The transport's own retries (urllib3's) are off: each would log a warning line of its own, and
            # the guard retries with the same backoff as every sink, then gives up with one line.
            options: dict[str, Any] = {
                "url": settings.url or "",
                "endpoint": settings.endpoint,
                "timeout": self.config.sinks.read_timeout_seconds,
                "retry": {"total": 0},
            }
            if key:
                options["auth"] = ApiKeyTokenProvider({"apiKey": key})
            return OpenLineageClient(transport=HttpTransport(HttpConfig(**options)))
        from pathlib import Path

        from openlineage.client.transport.file import FileConfig, FileTransport

        path = settings.path or f"{self.root}/_lineage/openlineage.jsonl"
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=path, append=True)))

    def _event(
        self,
        state: str,
        at: dt.datetime,
        inputs: list[tuple[str, int | None]],
        outputs: list[tuple[str, int | None, int | None]],
        error: str | None,
        streaming: bool,
        spark_version: str,
    ) -> Any:
        from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import (
            dataset_version_dataset,
            error_message_run,
            job_type_job,
            output_statistics_output_dataset,
            processing_engine_run,
        )

        run_facets: dict[str, Any] = {
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=spark_version, name="spark", openlineageAdapterVersion=__version__
            )
        }
        if error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=secrets.scrub(error)[:2000], programmingLanguage="python"
            )
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(
                processingType="STREAMING" if streaming else "BATCH", integration="SPARK", jobType="JOB"
            )
        }

        def versioned(version: int | None) -> dict[str, Any]:
            return (
                {} if version is None else {"version": dataset_version_dataset.DatasetVersionDatasetFacet(str(version))}
            )

        input_sets = [InputDataset(*dataset_address(name, self.root), facets=versioned(v)) for name, v in inputs]
        output_sets = []
        for name, version, rows in outputs:
            output_facets: dict[str, Any] = {}
            if rows is not None:
                output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=rows
                )
            output_sets.append(
                OutputDataset(*dataset_address(name, self.root), facets=versioned(version), outputFacets=output_facets)
            )
        return RunEvent(
            eventType=getattr(RunState, state),
            eventTime=at.astimezone(dt.UTC).isoformat(),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=self.settings.namespace, name=self.job, facets=job_facets),
            inputs=input_sets,
            outputs=output_sets,
            producer=PRODUCER,
        )

    def emit(
        self,
        state: str,
        at: dt.datetime,
        spark_version: str,
        inputs: Sequence[tuple[str, int | None]] = (),
        outputs: Sequence[tuple[str, int | None, int | None]] = (),
        error: str | None = None,
        streaming: bool = False,
    ) -> None:
        """Emit one event (``START``, ``COMPLETE`` or ``FAIL``).

        An event the HTTP endpoint does not take (unreachable, timed out, an error status) is given up in
        :attr:`guard`, for the caller to record; a lineage file that cannot be written raises.

        Args:
            state: ``START``, ``COMPLETE`` or ``FAIL``.
            at: when the run began or ended (an aware time).
            spark_version: the Spark version the run ran on.
            inputs: ``(dataset, version)`` of each dataset the run read, as the suite names them
                (``silver/order_lines``, ``files:<path>``); the version None when not known.
            outputs: ``(dataset, version, rows written)`` of each table the run wrote; None when not known.
            error: the failure's message (scrubbed of secrets here too), for ``FAIL``; None otherwise.
            streaming: whether the job is a streaming one.
        """
        if self.client is None:
            return
        event = self._event(state, at, list(inputs), list(outputs), error, streaming, spark_version)
        if self.settings.transport != "http":
            self.client.emit(event)
            return
        # requests' errors (refused, timed out, an error status) are OSErrors.
        self.guard.send("openlineage", f"the {state} event of {self.job}", lambda: self.client.emit(event), (OSError,))
