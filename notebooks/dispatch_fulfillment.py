# Databricks notebook source
# MAGIC %md
# MAGIC # dispatch_fulfillment
# MAGIC Starts an AWS Step Functions execution (`fulfillment.state_machine_arn`) for each pending request of the
# MAGIC outbox `gold/fulfillment_requests`, named after the request so that no retry starts a second, and records
# MAGIC the execution, its status and its calls on the request's row. The notebook installs nothing: it calls the
# MAGIC same library function as `etl-suite run dispatch_fulfillment`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("dispatch_fulfillment", config, spark=spark)
print(result.summary())
