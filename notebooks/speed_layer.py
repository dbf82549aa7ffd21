# Databricks notebook source
# MAGIC %md
# MAGIC # speed_layer
# MAGIC Events from Kafka, Kinesis (the runtime's `kinesis` source: set `speed.kinesis.connector=databricks`) or a
# MAGIC landing folder into bronze, silver and the real-time gold views, exactly once. The notebook installs nothing:
# MAGIC it calls the same library function as `etl-suite run speed_layer`, with the cluster's own `spark`. It runs
# MAGIC until the job is cancelled; put `run.available_now=true` in the `overrides` widget to drain and stop.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("speed_layer", config, spark=spark)
print(result.summary())
