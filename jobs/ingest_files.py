"""Land new extract files in bronze.

    spark-submit jobs/ingest_files.py [--conf PATH] [--set KEY=VALUE ...]

is the same as ``etl-suite run ingest_files ...``.
"""

from __future__ import annotations

import sys

from etl_lib.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("ingest_files"))
