# Databricks notebook source
# MAGIC %md
# MAGIC # train_models
# MAGIC Trains the purchase Isolation Forest and the churn models (Online Retail and Telco), and logs and registers them
# MAGIC in MLflow (on Databricks, set `ml.tracking_uri=databricks` in the `overrides` widget). The notebook installs
# MAGIC nothing: it calls the same library function as `etl-suite run train_models`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("train_models", config, spark=spark)
print(result.summary())
