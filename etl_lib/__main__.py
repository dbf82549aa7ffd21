"""``python -m etl_lib`` is ``etl-suite``."""

from __future__ import annotations

from etl_lib.cli import main

raise SystemExit(main())
