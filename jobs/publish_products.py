"""Job publish_products (see etl-suite jobs).

    spark-submit jobs/publish_products.py [--conf PATH] [--set KEY=VALUE ...]

is the same as ``etl-suite run publish_products ...``.
"""

from __future__ import annotations

import sys

from etl_lib.cli import job_main

if __name__ == "__main__":
    sys.exit(job_main("publish_products"))
