"""What a listener hears of a streaming query's batches, which the speed layer waits for before it writes them down."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from etl_lib.jobs.speed_layer import ProgressRecorder, last_batch_run

#: Where a progress row (``audit/stream_progress``'s columns) has the batch's id.
BATCH_ID = 3


def test_a_listener_hears_of_the_batches_that_ran_not_of_a_trigger_that_found_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.json").write_text(json.dumps({"n": 1}) + "\n" + json.dumps({"n": 2}) + "\n")
    recorder = ProgressRecorder({"progress_probe"})
    spark.streams.addListener(recorder)
    reports = []
    try:
        for _ in range(2):  # the second run, from the first's checkpoint, finds nothing new
            query = (
                spark.readStream.schema("n INT")
                .json(str(landing))
                .writeStream.queryName("progress_probe")
                .foreachBatch(lambda frame, batch_id: _count(frame))
                .option("checkpointLocation", str(tmp_path / "checkpoint"))
                .trigger(availableNow=True)
                .start()
            )
            query.awaitTermination()
            reports.append(query.recentProgress)
            # Heard of the batch that ran, and not held waiting for the trigger that found nothing.
            assert recorder.wait_for([query], timeout=30)
    finally:
        spark.streams.removeListener(recorder)
    ran, idle = reports
    assert [(report["batchId"], report["numInputRows"]) for report in ran] == [(0, 2)]
    assert last_batch_run(ran) == 0
    # Spark reports the second run's trigger under the id of the batch to come, and tells no listener of it.
    assert [(report["batchId"], report["numInputRows"]) for report in idle] == [(1, 0)]
    assert last_batch_run(idle) == -1
    assert recorder.last_batch == {"progress_probe": 0}
    assert [row[BATCH_ID] for row in recorder.drain()] == [0]


def _count(frame: DataFrame) -> None:
    frame.count()
