from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324 - a checksum, not security


@pytest.mark.parametrize(
    ("relative", "size", "digest"),
    [
        ("online_retail/online_retail.parquet", 3_583_928, "09242ee37dcfab2582190483a220a8dc"),
        ("telco_churn/WA_Fn-UseC_-Telco-Customer-Churn.csv", 970_457, "3b0bfab28a8101b4e4fdd08025a5c235"),
    ],
)
def test_bundled_files_are_the_published_ones(relative: str, size: int, digest: str) -> None:
    path = DATA / relative
    assert path.stat().st_size == size
    assert md5(path) == digest


def test_attribution_is_kept_beside_the_data() -> None:
    readme = (DATA / "README.md").read_text()
    for needle in ("doi:10.24432/C5BW33", "CC BY 4.0", "Apache-2.0", "arXiv:2206.09426", "doi:10.1109/ICDM.2008.17"):
        assert needle in readme


def test_online_retail_facts() -> None:
    table = pq.read_table(DATA / "online_retail" / "online_retail.parquet")
    assert table.num_rows == 541_909
    assert table.column_names == [
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "CustomerID",
        "Country",
    ]
    assert pc.sum(table["Quantity"]).as_py() == 5_176_450
    assert pc.count_distinct(table["InvoiceNo"]).as_py() == 25_900
    assert pc.count_distinct(table["StockCode"]).as_py() == 4_070
    assert pc.count_distinct(table["CustomerID"], mode="only_valid").as_py() == 4_372
    assert pc.count_distinct(table["Country"]).as_py() == 38
    assert table["CustomerID"].null_count == 135_080
    assert table["Description"].null_count == 1_454


def test_outlier_benchmark_shapes() -> None:
    import numpy as np

    expected = {
        "4_breastw.npz": (683, 9, 239),
        "29_Pima.npz": (768, 8, 268),
        "32_shuttle.npz": (49_097, 9, 3_511),
        "23_mammography.npz": (11_183, 6, 260),
        "2_annthyroid.npz": (7_200, 6, 534),
        "18_Ionosphere.npz": (351, 32, 126),
    }
    for name, (rows, columns, anomalies) in expected.items():
        with np.load(DATA / "outlier_benchmarks" / name, allow_pickle=False) as archive:
            assert archive["X"].shape == (rows, columns), name
            assert int(archive["y"].sum()) == anomalies, name
