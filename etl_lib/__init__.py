"""A PySpark batch-and-streaming job suite for the Delta lakehouse."""

from __future__ import annotations

__version__ = "0.1.0"
