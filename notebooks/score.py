# Databricks notebook source
# MAGIC %md
# MAGIC # score
# MAGIC Scores churn and purchase anomalies with the models the MLflow alias points at, into gold tables
# MAGIC (on Databricks, set `ml.tracking_uri=databricks` in the `overrides` widget). The notebook installs
# MAGIC nothing: it calls the same library function as `etl-suite run score`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("score", config, spark=spark)
print(result.summary())
