"""Job dispatch_fulfillment (see etl-suite jobs).

    spark-submit jobs/dispatch_fulfillment.py [--conf PATH] [--set KEY=VALUE ...]

is the same as ``etl-suite run dispatch_fulfillment ...``.
"""

from __future__ import annotations

import sys

from etl_lib.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("dispatch_fulfillment"))
