# Databricks notebook source
# MAGIC %md
# MAGIC # ingest_files
# MAGIC Lands the files that arrived since the last run of every configured file source in its bronze Delta table.
# MAGIC The notebook installs nothing: the cluster has `etl_lib` installed, and this calls the same library
# MAGIC function as `etl-suite run ingest_files`, with the cluster's own `spark`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("ingest_files", config, spark=spark)
print(result.summary())
