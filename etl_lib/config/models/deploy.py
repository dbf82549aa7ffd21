"""Deployment definitions: AWS Glue, EMR, Databricks."""

from __future__ import annotations

from pydantic import Field

from etl_lib.config.types import _Section


class GlueDeployConfig(_Section):
    """AWS Glue job definitions (``CreateJob`` input) for every job."""

    #: The IAM role the jobs run as: an account's own, so no default (``make package`` asks for it).
    role_arn: str | None = Field(default=None, pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/.+$")
    worker_type: str = "G.1X"
    number_of_workers: int = Field(default=2, ge=2)
    timeout_minutes: int = Field(default=120, ge=1)
    #: The suite's configuration on Glue: a file of ``conf/`` (shipped with ``--extra-files``).
    conf: str = "conf/glue.yaml"
    #: Each job's name on Glue: this prefix and the job's name.
    job_prefix: str = "etl-suite-"


class EmrDeployConfig(_Section):
    """EMR on EC2 steps and EMR Serverless job runs (spark-submit arguments) for every job."""

    release_label: str = "emr-7.12.0"
    conf: str = "conf/emr.yaml"
    #: EMR Serverless: the application and the role its runs assume, an account's own (``make package`` asks).
    application_id: str | None = None
    execution_role_arn: str | None = Field(default=None, pattern=r"^arn:aws[\w-]*:iam::\d{12}:role/.+$")


class DatabricksDeployConfig(_Section):
    """A Databricks asset bundle: one job per suite job, each a notebook task on a job cluster."""

    conf: str = "conf/databricks.yaml"
    spark_version: str = "16.4.x-scala2.12"
    node_type_id: str = "m5d.large"
    num_workers: int = Field(default=1, ge=0)


class DeployConfig(_Section):
    """Where ``make package`` puts the suite for the platforms, and how their job definitions look."""

    #: Where the package's files are uploaded (the descriptors point there): ``s3://bucket/prefix``, a bucket of the
    #: user's own (``make package`` asks for it).
    artifacts_uri: str | None = Field(default=None, pattern=r"^s3://[^/]+(/.*)?$")
    glue: GlueDeployConfig = Field(default_factory=GlueDeployConfig)
    emr: EmrDeployConfig = Field(default_factory=EmrDeployConfig)
    databricks: DatabricksDeployConfig = Field(default_factory=DatabricksDeployConfig)
