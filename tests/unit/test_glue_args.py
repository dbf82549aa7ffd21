"""Job scripts started the AWS Glue way: Glue's own arguments beside ours, read as getResolvedOptions reads them."""

from __future__ import annotations

import json

import pytest

from etl_lib.deploy.glue_args import glue_arguments, is_glue_invocation, resolved_options, suite_arguments
from etl_lib.errors import UsageError

#: What Glue puts on a job script's command line besides the job's own arguments.
GLUE_OWN = [
    "--JOB_ID",
    "j_0123",
    "--JOB_RUN_ID",
    "jr_4567",
    "--job-bookmark-option",
    "job-bookmark-disable",
    "--TempDir",
    "s3://bucket/tmp/",
    "--enable-glue-datacatalog",
    "true",
    "--conf",
    "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
    "--datalake-formats",
    "delta",
]


def test_glue_is_recognised_by_its_job_name() -> None:
    assert is_glue_invocation(["--JOB_NAME", "batch"])
    assert is_glue_invocation(["--JOB_NAME=batch"])
    assert not is_glue_invocation(["--conf", "conf/local.yaml", "--set", "JOB_NAME=x"])


def test_options_are_read_as_get_resolved_options_reads_them() -> None:
    argv = ["script.py", "--JOB_NAME", "first", *GLUE_OWN, "--process-date=2011-12-10", "--JOB_NAME", "batch"]
    # The last occurrence wins, --KEY=VALUE is the same as --KEY VALUE, unknown arguments are left alone.
    assert resolved_options(argv, ["JOB_NAME", "process-date"]) == {"JOB_NAME": "batch", "process-date": "2011-12-10"}


def test_a_required_option_that_is_missing_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="process-date"):
        resolved_options(["script.py", "--JOB_NAME", "batch"], ["JOB_NAME", "process-date"])


def test_glue_arguments_become_the_suites_own() -> None:
    overrides = {"lakehouse.root": "s3://bucket/lake", "spark.conf.spark.sql.shuffle.partitions": 16, "ml.x": "5"}
    argv = [
        "jobs/batch_layer.py",
        "--JOB_NAME",
        "etl-suite-batch_layer",
        *GLUE_OWN,
        "--suite-conf",
        "glue.yaml",
        "--suite-overrides",
        json.dumps(overrides),
        "--process-date",
        "2011-12-10",
        "--full-refresh",
        "false",
    ]
    assert suite_arguments(argv, {"process-date": False, "full-refresh": True}) == [
        "--conf",
        "glue.yaml",
        "--set",
        'lakehouse.root="s3://bucket/lake"',
        "--set",
        "spark.conf.spark.sql.shuffle.partitions=16",
        "--set",
        'ml.x="5"',  # a text stays a text
        "--process-date",
        "2011-12-10",
    ]
    sets = ['lakehouse.root="s3://bucket/lake"', "spark.conf.spark.sql.shuffle.partitions=16", 'ml.x="5"']
    expected = ["--conf", "glue.yaml"]
    for override in sets:
        expected += ["--set", override]
    assert suite_arguments([*argv[:-1], "true"], {"full-refresh": True}) == [*expected, "--full-refresh"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("lakehouse.root=/x", "not a JSON object"), ('["lakehouse.root=/x"]', "JSON object of configuration keys")],
)
def test_overrides_that_are_not_a_json_object_are_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        suite_arguments(["job.py", "--JOB_NAME", "j", "--suite-overrides", value], {})


def test_a_switch_takes_true_or_false_only() -> None:
    with pytest.raises(UsageError, match="true or false"):
        suite_arguments(["job.py", "--JOB_NAME", "j", "--full-refresh", "maybe"], {"full-refresh": True})


def test_descriptors_write_what_the_scripts_read() -> None:
    arguments = glue_arguments("glue.yaml", {"lakehouse.root": "s3://b/lake"}, {"process-date": "2011-12-10"})
    argv = ["job.py", "--JOB_NAME", "j", *GLUE_OWN, *[part for pair in arguments.items() for part in pair]]
    assert suite_arguments(argv, {"process-date": False}) == [
        "--conf",
        "glue.yaml",
        "--set",
        'lakehouse.root="s3://b/lake"',
        "--process-date",
        "2011-12-10",
    ]
