"""Packaging of the lakehouse ETL suite (the library ``etl_lib`` and the ``etl-suite`` command).

Version ranges here say what the code works with; the exact versions installed by ``make setup`` come
from the lock file of the chosen Spark line (``requirements/<line>.lock``, made by ``make lock``).
Spark and Delta are an extra: AWS Glue, EMR and Databricks provide their own.
"""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "etl_lib" / "__init__.py").read_text()).group(1)

setup(
    name="lakehouse-etl-suite",
    version=VERSION,
    description="PySpark batch-and-streaming job suite for the Delta lakehouse",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["etl_lib", "etl_lib.*"]),
    package_data={"etl_lib": ["py.typed", "runtime/stack.toml"]},
    install_requires=[
        "pyyaml>=6.0,<7",
        "pydantic>=2.7,<3",
        "boto3>=1.34,<2",
        "pyarrow>=15,<22",
        "pandas>=2.2,<3",
        "numpy>=1.26,<2.4",
        "scikit-learn>=1.5,<2",
        "mlflow>=3.1,<4",
        # The models the suite logs are serialised with skops; scoring loads them with it.
        "skops>=0.16,<1",
        "deltalake>=1.0,<2",
        "openlineage-python>=1.30,<2",
        # Excel workbooks (format: xlsx) are read with openpyxl, the reader pandas uses for them.
        "openpyxl>=3.1.5,<4",
        # The data mesh's contracts are checked against the Open Data Contract Standard's own model and JSON
        # schema (shipped in its package) before they are written.
        "open-data-contract-standard==3.2.0",
        "jsonschema>=4.23,<5",
    ],
    extras_require={
        # Spark and Delta for local runs and spark-submit; platforms bring their own.
        "spark": ["pyspark>=3.5.6,<4.2", "delta-spark>=3.3.2,<4.3"],
        # Clients and servers of the local services, and the engines that read our tables besides Spark.
        "local": [
            "confluent-kafka>=2.4,<3",
            "psycopg[binary]>=3.2,<4",
            "moto[server]>=5.1,<6",
            "redis>=5,<9",
            "duckdb==1.4.4",
            "duckdb-ext-delta==1.4.4.20260205",
        ],
        # The peers `make bench` measures the quality engine against (Deequ's jar comes from Maven, see stack.toml).
        "bench": [
            "great-expectations>=1.24,<2",
            "pydeequ>=1.7,<2",
        ],
        "dev": [
            # pytest-xdist 3.8 does not group tests (--dist loadgroup) on pytest 9.2: pytest-dev/pytest-xdist#1386.
            "pytest>=8,<9.2",
            "pytest-timeout>=2.3,<3",
            "pytest-xdist>=3.6,<4",
            "chispa>=0.10,<1",
            "hypothesis>=6.100,<7",
            "ruff>=0.6,<1",
            "mypy>=1.10,<3",
            "types-PyYAML",
            # The layering of etl_lib, declared in pyproject.toml and checked by `make lint`.
            "import-linter>=2.6,<3",
            # The documentation site (`make docs`): MkDocs with the Material theme (Mermaid diagrams, included files).
            "mkdocs>=1.6,<2",
            "mkdocs-material>=9.5,<10",
        ],
    },
    entry_points={"console_scripts": ["etl-suite = etl_lib.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Topic :: Database",
    ],
)
