"""SCD2: a change of 1% of the keys MERGEd into a Type 2 dimension, against rewriting the dimension.

The dimension is built by the suite's own :func:`~etl_lib.layers.dimensions.scd2_history` from one
observation per key (``rows`` keys, one current version each). The change set is a later observation with
another country for every hundredth key, so each of those keys gains a version and its old one closes.

- MERGE: what the batch layer does (history of the changed keys, ``diff_rows``, ``apply_changes``);
- rewrite: the same history of the changed keys, with every other row, overwriting the table;
- MERGE with deletion vectors: the same MERGE on a table with ``delta.enableDeletionVectors`` (the suite
  keeps them off by default so that every reader of its tables can read them).

Every attempt starts from the same table (Delta RESTORE to the built version, not timed), and the tables
the three ways leave behind are checked to hold the same rows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import measure, record, target

PROJECT = Path(__file__).resolve().parents[1]
SIZES = {"tiny": 5_000, "full": 1_000_000}
COUNTRIES = ["United Kingdom", "France", "Germany", "EIRE", "Spain", "Netherlands", "Belgium"]
CHANGED_EVERY = 100  # 1% of the keys


def run(
    size: str, repeat: int = 5, results_dir: Path | None = None, spark: Any = None, warmup: int = 1
) -> dict[str, Any]:
    """Measure ``size`` (tiny|full); ``spark`` reuses a session (it is then left running)."""
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    from etl_lib.config import Scd2Config, load_config
    from etl_lib.io import lakehouse
    from etl_lib.layers import dimensions
    from etl_lib.layers.changes import diff_rows
    from etl_lib.runtime.session import build_session

    rows = SIZES[size]
    config = load_config(PROJECT / "conf" / "local.yaml", ["spark.log_level=ERROR"])
    own_session = spark is None
    spark = spark or build_session(config.spark)
    scd2 = Scd2Config(keys=["customer_id"], sequence_by="invoice_date", tracked=["country"])
    keys = scd2.keys
    version_keys = [*keys, dimensions.EFFECTIVE_FROM]
    countries = F.array(*[F.lit(name) for name in COUNTRIES])

    def observations(frame: DataFrame, shift: int, days: int) -> DataFrame:
        return frame.select(
            F.format_string("C%08d", "id").alias("customer_id"),
            F.timestamp_seconds(F.lit(1_291_161_600 + days * 86_400) + F.col("id") % 86_400).alias("invoice_date"),
            F.element_at(countries, ((F.col("id") + shift) % len(COUNTRIES) + 1).cast("int")).alias("country"),
        )

    first = observations(spark.range(rows), 0, 0)
    changes = observations(spark.range(rows).where(F.col("id") % CHANGED_EVERY == 7), 1, 30).persist()
    changed = changes.count()

    def change_set(path: str) -> DataFrame:
        existing = lakehouse.read(spark, path)
        history = dimensions.scd2_history(changes, existing, scd2)
        current = existing.join(changes.select(*keys), keys, "left_semi")
        return diff_rows(history, current, version_keys)

    def merge(path: str) -> None:
        lakehouse.apply_changes(spark, path, change_set(path), version_keys)

    def rewrite(path: str) -> None:
        existing = lakehouse.read(spark, path)
        history = dimensions.scd2_history(changes, existing, scd2)
        others = existing.join(changes.select(*keys), keys, "left_anti")
        others.unionByName(history).write.format("delta").mode("overwrite").save(path)

    def fingerprint(path: str) -> tuple[int, int]:
        table = lakehouse.read(spark, path)
        row = table.agg(F.count("*"), F.sum(F.xxhash64(*sorted(table.columns)).cast("decimal(38,0)"))).first()
        return int(row[0]), int(row[1])

    ways = {
        "rewrite the dimension": (rewrite, {}),
        "MERGE (the suite's way)": (merge, {}),
        "MERGE, deletion vectors on": (merge, {"delta.enableDeletionVectors": "true"}),
    }
    timings: dict[str, dict[str, Any]] = {}
    prints: dict[str, tuple[int, int]] = {}
    files: dict[str, tuple[int, dict[str, str]]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scd2-") as folder:
            built = dimensions.scd2_history(first, dimensions.empty_history(first, scd2), scd2).persist()
            for number, (case, (action, properties)) in enumerate(ways.items()):
                path = str(Path(folder) / f"dim_{number}")
                lakehouse.ensure_table(spark, path, built.schema, properties)
                built.write.format("delta").mode("append").save(path)
                table = DeltaTable.forPath(spark, path)
                start = table.history(1).first()["version"]
                before = len(spark.read.format("delta").load(path).inputFiles())
                timings[case] = measure(
                    lambda _, path=path, action=action: action(path),
                    repeat,
                    warmup,
                    prepare=lambda _, table=table, start=start: table.restoreToVersion(start),
                )
                prints[case] = fingerprint(path)
                # What the last attempt did to the files, as Delta recorded it.
                files[case] = (before, dict(table.history(1).first()["operationMetrics"] or {}))
            # The MERGE's own first step, alone: the change set, computed and counted, nothing written.
            computing = measure(lambda _: change_set(str(Path(folder) / "dim_1")).count(), repeat, warmup)
            built.unpersist()
    finally:
        changes.unpersist()
        if own_session:
            spark.stop()
    if len(set(prints.values())) != 1:
        raise AssertionError(f"the three ways left different tables: {prints}")
    base = timings["rewrite the dimension"]["median"]
    merged = timings["MERGE (the suite's way)"]["median"]
    speedup = base / merged
    table_files, merge_metrics = files["MERGE (the suite's way)"]
    removed = int(merge_metrics.get("numTargetFilesRemoved", 0))
    copied = int(merge_metrics.get("numTargetRowsCopied", 0))
    with_dvs = timings["MERGE, deletion vectors on"]["median"]
    cause = ""
    if speedup < 5:
        cause = (
            f"of the MERGE's {merged:.1f} s, computing the change set alone takes {computing['median']:.1f} s "
            "(the changed keys' history: the whole dimension is read to find their versions, as the rewrite "
            f"reads it); the MERGE then rewrote {removed} of the table's {table_files} files, copying "
            f"{copied:,} unchanged rows (1% of keys at random are in every file). With deletion vectors, which "
            f"the suite keeps off so that every reader can read its tables, no file is rewritten, and it takes "
            f"{with_dvs:.1f} s: the MERGE still joins the change set with every row of the table to find them"
        )
    result = {
        "summary": (
            f"{rows:,} keys, {changed:,} changed (1%); median of {repeat} after {warmup} warm-up; each attempt "
            "starts from the same table (a Delta RESTORE, not timed)"
        ),
        "columns": ["seconds", "spread", "speedup_over_rewrite", "files_rewritten", "rows_copied"],
        "rows": [
            {
                "case": case,
                "seconds": timing["median"],
                "spread": timing["spread"],
                "speedup_over_rewrite": round(base / timing["median"], 2),
                "files_rewritten": f"{files[case][1].get('numTargetFilesRemoved', 'all')} of {files[case][0]}",
                # A rewrite writes every row of the keys that did not change again.
                "rows_copied": int(files[case][1].get("numTargetRowsCopied", rows - changed)),
            }
            for case, timing in timings.items()
        ],
        "change_set_seconds": computing,
        "runs": timings,
        "targets": [target("SCD2 MERGE of 1% against a rewrite", ">= 5x", speedup, speedup >= 5, cause)],
    }
    if results_dir is not None:
        record("scd2_merge", f"python -m benchmarks scd2_merge --size {size}", result, results_dir)
    return result
