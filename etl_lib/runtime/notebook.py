"""Arguments of a Databricks notebook run, taken from its widgets.

A notebook of ``notebooks/`` calls :func:`notebook_arguments` with its ``globals()``: on Databricks the
``dbutils`` there provides the widgets ``conf`` (a config file) and ``overrides`` (``KEY=VALUE`` lines);
anywhere else the defaults apply, so the same notebook runs in a local test with a local session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from etl_lib.config import SuiteConfig, load_config


def notebook_arguments(namespace: Mapping[str, Any], default_conf: str) -> SuiteConfig:
    """Load the configuration a notebook run asks for.

    Args:
        namespace: the notebook's ``globals()``; ``dbutils`` is used when present.
        default_conf: config file used when the ``conf`` widget is empty or there are no widgets.

    Returns:
        The validated configuration.

    Raises:
        ConfigError: as :func:`etl_lib.config.load_config`.
    """
    conf, overrides = default_conf, ""
    dbutils = namespace.get("dbutils")
    if dbutils is not None:
        dbutils.widgets.text("conf", default_conf, "Config file")
        dbutils.widgets.text("overrides", "", "KEY=VALUE per line")
        conf = dbutils.widgets.get("conf") or default_conf
        overrides = dbutils.widgets.get("overrides") or ""
    lines = [line.strip() for line in overrides.splitlines() if line.strip()]
    return load_config(conf, lines)
