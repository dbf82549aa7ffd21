from __future__ import annotations

import pytest
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from etl_lib.runtime.cache import Cached

NONE = StorageLevel(False, False, False, False, 1)


class _Recorded:
    """A real frame whose unpersist calls are written down (in order)."""

    def __init__(self, frame: DataFrame, name: str, calls: list[str]) -> None:
        self.frame, self.name, self.calls = frame, name, calls

    def persist(self) -> _Recorded:
        self.frame = self.frame.persist()
        return self

    def unpersist(self) -> None:
        self.calls.append(self.name)
        self.frame.unpersist()


def test_frames_are_let_go_of_dependants_first_and_nothing_stays_cached(spark: SparkSession) -> None:
    calls: list[str] = []
    with Cached() as cache:
        records = cache(_Recorded(spark.range(100), "records", calls))
        parsed = cache(_Recorded(records.frame.selectExpr("id", "id % 7 AS bucket"), "parsed", calls))
        fresh = cache(_Recorded(parsed.frame.where("bucket = 3"), "fresh", calls))
        assert fresh.frame.count() == 14
        assert all(f.frame.storageLevel != NONE for f in (records, parsed, fresh))
    assert calls == ["fresh", "parsed", "records"]
    assert all(f.frame.storageLevel == NONE for f in (records, parsed, fresh))


def test_frames_are_let_go_of_when_the_block_fails(spark: SparkSession) -> None:
    kept: list[DataFrame] = []

    def failing_batch() -> None:
        with Cached() as cache:
            kept.append(cache(spark.range(10)))
            kept[0].count()
            raise RuntimeError("batch failed")

    with pytest.raises(RuntimeError, match="batch failed"):
        failing_batch()
    assert kept[0].storageLevel == NONE
