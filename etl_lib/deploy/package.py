"""``make package``: the suite as the platforms take it, and their job definitions, from one configuration.

Writes into the output folder:

- ``etl_lib.zip``: the library for ``spark-submit --py-files`` and Glue ``--extra-py-files``;
- ``requirements.txt``: the library's runtime requirements at the versions of this install, comma-joined
  for Glue ``--additional-python-modules`` in the job definitions;
- ``jobs/*.py`` (the entry scripts) and ``conf/*.yaml`` (every configuration with its ``extends`` laid
  flat, so that one file is enough on a platform);
- ``glue/<job>.json``: AWS Glue ``CreateJob`` input per job (``gluestreaming`` for the speed layer),
  Delta through ``--datalake-formats delta`` and the Delta session settings, the Glue version of the
  active Spark line;
- ``emr/steps.json``: EMR on EC2 ``AddJobFlowSteps`` steps (``command-runner.jar`` spark-submit);
- ``emr-serverless/<job>.json``: EMR Serverless ``StartJobRun`` input per job;
- ``databricks.yml`` with ``notebooks/``: a Databricks asset bundle rooted at the output folder, one job per
  suite job (its notebook as the task, the wheel as its library, the flat ``conf/databricks.yaml``).

Every path in the definitions points under ``deploy.artifacts_uri``, where the folder is to be uploaded.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import Requirement

from etl_lib.config import SuiteConfig, load_config
from etl_lib.deploy.glue_args import glue_arguments
from etl_lib.errors import ConfigError
from etl_lib.runtime.registry import JOBS, JobSpec
from etl_lib.runtime.session import CODEGEN_CACHE_CONF, SESSION_CONF
from etl_lib.runtime.stack import SparkLine, active_line

PROJECT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "lakehouse-etl-suite"
#: Jobs that run as streams on a platform (Glue's ``gluestreaming`` type).
STREAMING = {"speed_layer"}
#: What the platforms bring themselves: never shipped with the suite.
PROVIDED = {"pyspark", "delta-spark", "py4j"}


def runtime_requirements() -> list[str]:
    """The library's own requirements (no extras), pinned to the versions installed here."""
    found = []
    for text in metadata.requires(DISTRIBUTION) or []:
        requirement = Requirement(text)
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue
        if requirement.name.lower() in PROVIDED:
            continue
        found.append(f"{requirement.name}=={metadata.version(requirement.name)}")
    return sorted(found, key=str.lower)


def _zip_library(target: Path) -> None:
    package = PROJECT / "etl_lib"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                archive.write(path, path.relative_to(PROJECT).as_posix())


def _flat_configs(target: Path) -> list[str]:
    """Every ``conf/*.yaml`` with its ``extends`` laid flat (what it means, in one file); their names."""
    from etl_lib.config import read_layered

    target.mkdir(parents=True, exist_ok=True)
    names = []
    for path in sorted((PROJECT / "conf").glob("*.yaml")):
        data = read_layered(path)
        (target / path.name).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        names.append(path.name)
    return names


def _session_conf_argument() -> str:
    # Glue takes several Spark settings in its one --conf argument, joined by " --conf ".
    return " --conf ".join(f"{key}={value}" for key, value in SESSION_CONF.items())


def glue_job(config: SuiteConfig, spec: JobSpec, line: SparkLine, requirements: list[str]) -> dict[str, Any]:
    """The ``CreateJob`` input of one job.

    Args:
        config: the suite configuration (``deploy``, ``app``).
        spec: the job, as the registry gives it.
        line: the Spark line the job runs on; it gives the Glue version.
        requirements: pinned runtime requirements (``name==version``), for ``--additional-python-modules``.
    """
    deploy, glue = config.deploy, config.deploy.glue
    artifacts = _required(deploy.artifacts_uri, "deploy.artifacts_uri").rstrip("/")
    conf_name = Path(glue.conf).name
    arguments = {
        "--job-language": "python",
        "--datalake-formats": "delta",
        "--conf": _session_conf_argument(),
        "--extra-py-files": f"{artifacts}/etl_lib.zip",
        "--additional-python-modules": ",".join(requirements),
        "--extra-files": f"{artifacts}/conf/{conf_name}",
        "--enable-glue-datacatalog": "true",
        # Run-time options (--process-date) are given to each run, not to the definition.
        **glue_arguments(conf_name, {}, {}),
    }
    streaming = spec.name in STREAMING
    job: dict[str, Any] = {
        "Name": f"{glue.job_prefix}{spec.name}",
        "Description": spec.summary,
        "Role": _required(glue.role_arn, "deploy.glue.role_arn"),
        "Command": {
            "Name": "gluestreaming" if streaming else "glueetl",
            "ScriptLocation": f"{artifacts}/jobs/{spec.name}.py",
            "PythonVersion": "3",
        },
        "GlueVersion": line.glue_version,
        "WorkerType": glue.worker_type,
        "NumberOfWorkers": glue.number_of_workers,
        "DefaultArguments": arguments,
        "ExecutionProperty": {"MaxConcurrentRuns": 1},
        "Tags": {"application": config.app.name, "spark-line": line.name},
    }
    if not streaming:  # a streaming job runs until it is stopped
        job["Timeout"] = glue.timeout_minutes
    return job


def _submit_arguments(config: SuiteConfig) -> list[str]:
    artifacts = _required(config.deploy.artifacts_uri, "deploy.artifacts_uri").rstrip("/")
    conf_file = f"{artifacts}/conf/{Path(config.deploy.emr.conf).name}"
    arguments = ["--py-files", f"{artifacts}/etl_lib.zip", "--files", conf_file]
    for key, value in SESSION_CONF.items():
        arguments += ["--conf", f"{key}={value}"]
    return arguments


def emr_steps(config: SuiteConfig) -> list[dict[str, Any]]:
    """``AddJobFlowSteps`` steps: one spark-submit per job, in the registry's order."""
    artifacts = _required(config.deploy.artifacts_uri, "deploy.artifacts_uri").rstrip("/")
    conf_name = Path(config.deploy.emr.conf).name
    return [
        {
            "Name": f"etl-suite {spec.name}",
            "ActionOnFailure": "CONTINUE",
            "HadoopJarStep": {
                "Jar": "command-runner.jar",
                "Args": [
                    *["spark-submit", "--deploy-mode", "cluster", *_submit_arguments(config)],
                    *[f"{artifacts}/jobs/{spec.name}.py", "--conf", conf_name],
                ],
            },
        }
        for spec in JOBS.values()
    ]


def emr_serverless_run(config: SuiteConfig, spec: JobSpec) -> dict[str, Any]:
    """The ``StartJobRun`` input of one job on EMR Serverless."""
    emr = config.deploy.emr
    artifacts = _required(config.deploy.artifacts_uri, "deploy.artifacts_uri").rstrip("/")
    parameters = " ".join(
        [
            f"--conf spark.submit.pyFiles={artifacts}/etl_lib.zip",
            f"--conf spark.files={artifacts}/conf/{Path(emr.conf).name}",
            *[f"--conf {key}={value}" for key, value in SESSION_CONF.items()],
        ]
    )
    return {
        "applicationId": _required(emr.application_id, "deploy.emr.application_id"),
        "executionRoleArn": _required(emr.execution_role_arn, "deploy.emr.execution_role_arn"),
        "name": f"etl-suite-{spec.name}",
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": f"{artifacts}/jobs/{spec.name}.py",
                "entryPointArguments": ["--conf", Path(emr.conf).name],
                "sparkSubmitParameters": parameters,
            }
        },
        "tags": {"application": config.app.name},
    }


def databricks_bundle(config: SuiteConfig, wheel: str) -> dict[str, Any]:
    """A Databricks asset bundle rooted at the package: a job per suite job, its notebook with the wheel."""
    databricks = config.deploy.databricks
    jobs = {}
    for spec in JOBS.values():
        jobs[spec.name] = {
            "name": f"etl-suite-{spec.name}",
            "job_clusters": [
                {
                    "job_cluster_key": "suite",
                    "new_cluster": {
                        "spark_version": databricks.spark_version,
                        "node_type_id": databricks.node_type_id,
                        "num_workers": databricks.num_workers,
                        # Delta is built into Databricks' runtime: the cluster takes the other settings.
                        "spark_conf": {"spark.sql.session.timeZone": "UTC", **CODEGEN_CACHE_CONF},
                    },
                }
            ],
            "tasks": [
                {
                    "task_key": spec.name,
                    "job_cluster_key": "suite",
                    # Paths of a bundle are relative to its file; a notebook runs in its own folder.
                    "notebook_task": {
                        "notebook_path": f"notebooks/{spec.name}.py",
                        "base_parameters": {"conf": f"../conf/{Path(databricks.conf).name}"},
                    },
                    "libraries": [{"whl": wheel}],
                }
            ],
            "max_concurrent_runs": 1,
        }
    return {
        "bundle": {"name": config.app.name},
        "include": [],
        "targets": {"dev": {"mode": "development", "default": True}},
        "resources": {"jobs": jobs},
    }


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


#: What the job definitions name of the user's own account, which the suite cannot know: no default, no placeholder.
REQUIRED = (
    ("deploy.artifacts_uri", "s3://<bucket>/<prefix> the package is uploaded to"),
    ("deploy.glue.role_arn", "arn:aws:iam::<account>:role/<the role Glue jobs run as>"),
    ("deploy.emr.application_id", "the EMR Serverless application's id"),
    ("deploy.emr.execution_role_arn", "arn:aws:iam::<account>:role/<the role EMR Serverless runs assume>"),
)


def _required(value: str | None, key: str) -> str:
    """``value`` of the required deployment key ``key`` (:data:`REQUIRED`)."""
    if value is None:
        raise ConfigError(f"{key} is not set: the job definitions need {dict(REQUIRED)[key]}")
    return value


def missing_settings(config: SuiteConfig) -> list[str]:
    """The required deployment keys (:data:`REQUIRED`) the configuration leaves unset, each with what it takes."""
    missing = []
    for key, what in REQUIRED:
        value: object = config
        for part in key.split("."):
            value = getattr(value, part)
        if value is None:
            missing.append(f"{key} ({what})")
    return missing


def package(config: SuiteConfig, out: Path, wheel: str) -> list[Path]:
    """Write the package and the descriptors into ``out``; returns the files written.

    Raises:
        ConfigError: if a key the definitions need of the user's account (:data:`REQUIRED`) is not set.
    """
    missing = missing_settings(config)
    if missing:
        raise ConfigError(
            f"{config.source_file}: the job definitions need settings of your own account: "
            + "; ".join(missing)
            + " (set them under deploy: in the configuration, or with --set KEY=VALUE; make package CONF=... SET=...)"
        )
    line = active_line()
    requirements = runtime_requirements()
    out.mkdir(parents=True, exist_ok=True)
    _zip_library(out / "etl_lib.zip")
    (out / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
    shutil.copytree(PROJECT / "jobs", out / "jobs", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    _flat_configs(out / "conf")
    for spec in JOBS.values():
        _write_json(out / "glue" / f"{spec.name}.json", glue_job(config, spec, line, requirements))
        _write_json(out / "emr-serverless" / f"{spec.name}.json", emr_serverless_run(config, spec))
    _write_json(out / "emr" / "steps.json", emr_steps(config))
    shutil.copytree(
        PROJECT / "notebooks", out / "notebooks", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    bundle = out / "databricks.yml"
    bundle.write_text(yaml.safe_dump(databricks_bundle(config, wheel), sort_keys=False), encoding="utf-8")
    return sorted(path for path in out.rglob("*") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m etl_lib.deploy.package [--conf PATH] [--set KEY=VALUE ...] [--out dist]``."""
    parser = argparse.ArgumentParser(prog="python -m etl_lib.deploy.package", description=__doc__.splitlines()[0])
    parser.add_argument("--conf", metavar="PATH")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides")
    parser.add_argument("--out", default=str(PROJECT / "dist"))
    namespace = parser.parse_args(argv)
    out = Path(namespace.out)
    wheels = sorted(out.glob("lakehouse_etl_suite-*.whl"))
    if not wheels:
        print(f"no wheel of the suite in {out}: build it first (make package)", file=sys.stderr)
        return 2
    try:
        written = package(load_config(namespace.conf, namespace.overrides), out, wheels[-1].name)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(written)} files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
