"""Run the speed layer: events into bronze, silver and the real-time gold views.

    spark-submit jobs/speed_layer.py [--conf PATH] [--set KEY=VALUE ...] [--available-now]

is the same as ``etl-suite run speed_layer ...``.
"""

from __future__ import annotations

import sys

from etl_lib.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("speed_layer"))
