"""Run the batch layer: bronze, silver and gold from the extracts.

    spark-submit jobs/batch_layer.py [--conf PATH] [--set KEY=VALUE ...] [--process-date YYYY-MM-DD]

is the same as ``etl-suite run batch_layer ...``.
"""

from __future__ import annotations

import sys

from etl_lib.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("batch_layer"))
