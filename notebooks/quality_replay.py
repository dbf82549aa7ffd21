# Databricks notebook source
# MAGIC %md
# MAGIC # quality_replay
# MAGIC Checks the rows of a table waiting in `audit/quarantine` against the rules as they are now, and merges
# MAGIC those that pass into the table. Put `run.table=silver/order_lines` (say) in the `overrides` widget.
# MAGIC The notebook installs nothing: it calls the same library function as `etl-suite quality replay --table ...`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("quality_replay", config, spark=spark)
print(result.summary())
