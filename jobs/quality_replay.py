"""Check a table's quarantined rows again and release those that now pass.

    spark-submit jobs/quality_replay.py [--conf PATH] [--set KEY=VALUE ...] --table LAYER/NAME

is the same as ``etl-suite run quality_replay ...``.
"""

from __future__ import annotations

import sys

from etl_lib.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("quality_replay"))
