# Databricks notebook source
# MAGIC %md
# MAGIC # reconcile
# MAGIC Builds the lambda serving views (batch results before the batch layer's high-water mark, speed results
# MAGIC after it) and reconciles the speed layer with a batch recomputation into `audit/reconciliation`. The
# MAGIC notebook installs nothing: it calls the same library function as `etl-suite run reconcile`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("reconcile", config, spark=spark)
print(result.summary())
