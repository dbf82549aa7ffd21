"""`make package`: what it writes, and its job definitions created through boto3 on the local AWS endpoint."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from etl_lib.cli import job_parser
from etl_lib.config import load_config, validate_config
from etl_lib.deploy.glue_args import suite_arguments
from etl_lib.io.clients import local_client
from etl_lib.runtime.registry import JOBS
from etl_lib.runtime.session import CODEGEN_CACHE_CONF, SESSION_CONF
from etl_lib.runtime.stack import active_line
from etl_lib.services.aws import AwsService

PROJECT = Path(__file__).resolve().parents[2]
ARTIFACTS_BUCKET = "etl-suite-artifacts"
ARTIFACTS = f"s3://{ARTIFACTS_BUCKET}/lakehouse-etl-suite"
#: The deploy keys of the user's own account that the definitions name (test values: the local endpoint's account).
ACCOUNT = " ".join(
    [
        f"deploy.artifacts_uri={ARTIFACTS}",
        "deploy.glue.role_arn=arn:aws:iam::123456789012:role/etl-suite-glue",
        "deploy.emr.application_id=etl-suite-test-app",
        "deploy.emr.execution_role_arn=arn:aws:iam::123456789012:role/etl-suite-emr-serverless",
    ]
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "dist"
    completed = subprocess.run(
        # On the line this session runs (make would otherwise set the default line up again).
        ["make", "--no-print-directory", "package", f"DIST={out}", f"LINE={active_line().name}", f"SET={ACCOUNT}"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


@pytest.fixture(scope="module")
def uploaded(aws: AwsService, dist: Path) -> Any:
    """The package uploaded where the definitions point, as a user deploys it."""
    s3 = local_client(aws.aws, "s3")
    s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    for path in sorted(dist.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), ARTIFACTS_BUCKET, f"lakehouse-etl-suite/{path.relative_to(dist).as_posix()}")
    return s3


def _exists(s3: Any, uri: str) -> bool:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bool(s3.list_objects_v2(Bucket=bucket, Prefix=key)["KeyCount"])


def test_the_package_holds_the_library_its_requirements_scripts_and_flat_configs(dist: Path) -> None:
    assert len(list(dist.glob("lakehouse_etl_suite-*-py3-none-any.whl"))) == 1
    with zipfile.ZipFile(dist / "etl_lib.zip") as archive:
        names = set(archive.namelist())
    assert {"etl_lib/__init__.py", "etl_lib/runtime/stack.toml", "etl_lib/cli.py"} <= names
    assert not [name for name in names if "__pycache__" in name]
    requirements = (dist / "requirements.txt").read_text().split()
    assert all("==" in line for line in requirements)
    assert not {line.split("==")[0] for line in requirements} & {"pyspark", "delta-spark", "py4j"}
    assert {f"{name}.py" for name in JOBS} <= {path.name for path in (dist / "jobs").glob("*.py")}
    assert {f"{name}.py" for name in JOBS} <= {path.name for path in (dist / "notebooks").glob("*.py")}
    for conf in (dist / "conf").glob("*.yaml"):
        data = yaml.safe_load(conf.read_text())
        assert "extends" not in data, conf.name
        assert validate_config(data).model_dump() == load_config(PROJECT / "conf" / conf.name).model_dump()


def test_the_zip_is_the_library_spark_submit_py_files_imports(dist: Path, tmp_path: Path) -> None:
    # As --py-files / --extra-py-files put it on the path: imported from inside the zip, stack.toml read there.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import etl_lib, etl_lib.cli;"
        " from etl_lib.runtime.stack import load_stack;"
        " print(etl_lib.__file__); print(sorted(load_stack().lines))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(dist / "etl_lib.zip")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    where, lines = completed.stdout.splitlines()
    assert where.startswith(str(dist / "etl_lib.zip"))
    assert lines == "['spark35', 'spark41']"


def test_glue_jobs_are_created_from_the_definitions(aws: AwsService, dist: Path, uploaded: Any) -> None:
    glue = local_client(aws.aws, "glue")
    requirements = (dist / "requirements.txt").read_text().split()
    for name, spec in JOBS.items():
        definition = json.loads((dist / "glue" / f"{name}.json").read_text())
        glue.create_job(**definition)
        job = glue.get_job(JobName=definition["Name"])["Job"]
        assert job["Command"] == definition["Command"]
        assert job["Command"]["Name"] == ("gluestreaming" if name == "speed_layer" else "glueetl")
        assert job["GlueVersion"] == active_line().glue_version
        arguments = job["DefaultArguments"]
        assert arguments == definition["DefaultArguments"]
        assert arguments["--datalake-formats"] == "delta"
        assert arguments["--conf"] == " --conf ".join(f"{k}={v}" for k, v in SESSION_CONF.items())
        assert arguments["--additional-python-modules"].split(",") == requirements
        for key in ("--extra-py-files", "--extra-files"):
            assert _exists(uploaded, arguments[key]), arguments[key]
        assert _exists(uploaded, job["Command"]["ScriptLocation"])
        # What the script reads when Glue starts it with these arguments (plus Glue's own).
        argv = [f"{name}.py", "--JOB_NAME", job["Name"], "--JOB_RUN_ID", "jr_1", "--TempDir", "s3://tmp/"]
        argv += [part for pair in arguments.items() for part in pair]
        options = {opt.flag.removeprefix("--"): opt.switch for opt in spec.options}
        given = job_parser(spec, name).parse_args(suite_arguments(argv, options))
        assert given.conf == Path(arguments["--extra-files"]).name == "glue.yaml"
        assert load_config(dist / "conf" / given.conf).spark.session == "platform"
    assert sorted(glue.list_jobs()["JobNames"]) == sorted(f"etl-suite-{name}" for name in JOBS)


def test_emr_steps_are_added_to_a_cluster(aws: AwsService, dist: Path, uploaded: Any) -> None:
    emr = local_client(aws.aws, "emr")
    cluster = emr.run_job_flow(
        Name="etl-suite",
        ReleaseLabel=load_config().deploy.emr.release_label,
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Applications=[{"Name": "Spark"}],
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
    )["JobFlowId"]
    steps = json.loads((dist / "emr" / "steps.json").read_text())
    emr.add_job_flow_steps(JobFlowId=cluster, Steps=steps)
    listed = emr.list_steps(ClusterId=cluster)["Steps"]
    assert sorted(step["Name"] for step in listed) == sorted(f"etl-suite {name}" for name in JOBS)
    for step in listed:
        args = step["Config"]["Args"]
        assert args[:4] == ["spark-submit", "--deploy-mode", "cluster", "--py-files"]
        script = next(arg for arg in args if arg.endswith(".py"))
        assert _exists(uploaded, script)
        assert _exists(uploaded, args[args.index("--files") + 1])
        spec = JOBS[Path(script).stem]
        assert job_parser(spec, spec.name).parse_args(args[args.index(script) + 1 :]).conf == "emr.yaml"


def test_emr_serverless_runs_start_from_the_definitions(aws: AwsService, dist: Path, uploaded: Any) -> None:
    serverless = local_client(aws.aws, "emr-serverless")
    application = serverless.create_application(
        name="etl-suite", releaseLabel=load_config().deploy.emr.release_label, type="SPARK"
    )["applicationId"]
    for name in JOBS:
        definition = json.loads((dist / "emr-serverless" / f"{name}.json").read_text())
        definition["applicationId"] = application
        started = serverless.start_job_run(**definition)
        run = serverless.get_job_run(applicationId=application, jobRunId=started["jobRunId"])["jobRun"]
        submit = run["jobDriver"]["sparkSubmit"]
        assert submit == definition["jobDriver"]["sparkSubmit"]
        assert _exists(uploaded, submit["entryPoint"])
        settings = shlex.split(submit["sparkSubmitParameters"])
        assert settings[0::2] == ["--conf"] * (len(settings) // 2)
        for key, value in SESSION_CONF.items():
            assert f"{key}={value}" in settings
        assert _exists(uploaded, next(s.split("=", 1)[1] for s in settings if s.startswith("spark.submit.pyFiles=")))


def test_the_databricks_bundle_names_files_that_are_in_the_package(dist: Path) -> None:
    bundle = yaml.safe_load((dist / "databricks.yml").read_text())
    assert bundle["bundle"]["name"] == "lakehouse-etl-suite"
    jobs = bundle["resources"]["jobs"]
    assert sorted(jobs) == sorted(JOBS)
    for name, job in jobs.items():
        (task,) = job["tasks"]
        assert task["task_key"] == name
        assert task["job_cluster_key"] == job["job_clusters"][0]["job_cluster_key"]
        notebook = dist / task["notebook_task"]["notebook_path"]
        assert notebook.read_text().startswith("# Databricks notebook source\n")
        # A notebook runs in its own folder: its conf parameter is relative to it.
        conf = (notebook.parent / task["notebook_task"]["base_parameters"]["conf"]).resolve()
        assert load_config(conf).spark.session == "platform"
        (library,) = task["libraries"]
        assert (dist / library["whl"]).is_file()
        cluster = job["job_clusters"][0]["new_cluster"]
        assert {"spark_version", "node_type_id", "num_workers"} <= set(cluster)
        assert cluster["spark_conf"].items() >= CODEGEN_CACHE_CONF.items()
