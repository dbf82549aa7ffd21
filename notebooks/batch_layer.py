# Databricks notebook source
# MAGIC %md
# MAGIC # batch_layer
# MAGIC Extracts to bronze, silver (order lines, products, customers as SCD Type 2) and gold (customer features,
# MAGIC daily revenue), reading only what is new since the last run. The notebook installs nothing: it calls the
# MAGIC same library function as `etl-suite run batch_layer`, with the cluster's own `spark`. Put
# MAGIC `run.process_date=YYYY-MM-DD` in the `overrides` widget to compute gold as of a given day.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("batch_layer", config, spark=spark)
print(result.summary())
