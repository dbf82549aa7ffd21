# Databricks notebook source
# MAGIC %md
# MAGIC # publish_products
# MAGIC Publishes each domain's data products (`mesh.domains`): the product table, its row in
# MAGIC `mesh/data_products`, its data contract, and its registration in the catalog. The notebook installs
# MAGIC nothing: it calls the same library function as `etl-suite run publish_products`.

# COMMAND ----------

from __future__ import annotations

from etl_lib.runtime.notebook import notebook_arguments
from etl_lib.runtime.runner import run_job

config = notebook_arguments(globals(), default_conf="conf/databricks.yaml")

# COMMAND ----------

result = run_job("publish_products", config, spark=spark)
print(result.summary())
