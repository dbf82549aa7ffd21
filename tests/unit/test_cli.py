from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from etl_lib.cli import main
from etl_lib.runtime.registry import JOBS

PROJECT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path = PROJECT) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "etl_lib", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        timeout=120,
        check=False,
    )


def test_unknown_job_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_job"]) == 2
    assert capsys.readouterr().err == f"error: unknown job 'no_such_job'; known jobs: {', '.join(sorted(JOBS))}\n"


def test_unknown_option_of_a_job_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "ingest_files", "--frobnicate", "3"]) == 2
    err = capsys.readouterr().err
    assert err == "error: etl-suite run ingest_files: unrecognized arguments: --frobnicate 3\n"


def test_unknown_command_and_missing_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["launch"]) == 2
    assert "argument command: invalid choice: 'launch'" in capsys.readouterr().err
    assert main([]) == 2
    assert "the following arguments are required: command" in capsys.readouterr().err


def test_unknown_service_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "status", "zookeeper"]) == 2
    assert (
        capsys.readouterr().err
        == "error: unknown service zookeeper; known services: kafka, postgres, aws, redis, spark\n"
    )


def test_config_error_is_reported_before_spark_starts(tmp_path: Path) -> None:
    completed = run_cli("run", "ingest_files", "--set", "lakehouse.rot=/x", cwd=tmp_path)
    assert completed.returncode == 2
    conf = PROJECT / "conf" / "local.yaml"
    assert (
        completed.stderr
        == f"error: {conf}: invalid configuration\n  lakehouse.rot: unknown key (check the spelling, or remove it)\n"
    )
    assert completed.stdout == ""


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("speed.trigger_interval=soon", "speed.trigger_interval"),
        ("spark.master=yarn-client-please", "spark.master"),
        ("services.kafka.port=99999", "services.kafka.port"),
        ("run.process_date=2011-13-45", "run.process_date"),
        ("speed.max_payload_bytes=-1", "speed.max_payload_bytes"),
        ("speed.source=carrier-pigeon", "speed.source"),
    ],
)
def test_a_bad_value_is_one_message_naming_its_key_before_spark_starts(tmp_path: Path, override: str, key: str) -> None:
    completed = run_cli("run", "speed_layer", "--set", override, cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert lines[0] == f"error: {PROJECT / 'conf' / 'local.yaml'}: invalid configuration"
    assert lines[1].startswith(f"  {key}: ")
    assert len(lines) == 2


def test_missing_config_file_is_reported(tmp_path: Path) -> None:
    completed = run_cli("run", "ingest_files", "--conf", str(tmp_path / "absent.yaml"))
    assert completed.returncode == 2
    assert completed.stderr == f"error: {tmp_path / 'absent.yaml'}: configuration file not found\n"


def test_jobs_lists_every_job(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == sorted(JOBS)


def test_a_secret_given_on_the_command_line_is_refused_and_not_repeated(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config", "show", "--set", "spark.conf.spark.hadoop.fs.s3a.secret.key=s3cr3t"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("error: ")
    assert "secrets are never written in configuration, found one under spark.conf.spark.hadoop.fs.s3a.secret.key" in (
        captured.err
    )
    assert "s3cr3t" not in captured.err


def test_config_show_keeps_where_secrets_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["config", "show"])
    out = capsys.readouterr().out
    assert code == 0
    assert "password_env: ETL_SUITE_PG_PASSWORD" in out


def test_every_job_has_an_entry_point_script() -> None:
    scripts = sorted(path.stem for path in (PROJECT / "jobs").glob("*.py"))
    assert scripts == sorted(JOBS)
    for name in JOBS:
        assert f'job_main("{name}")' in (PROJECT / "jobs" / f"{name}.py").read_text()


def test_job_script_reports_usage_errors_like_the_cli(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, str(PROJECT / "jobs" / "ingest_files.py"), "--bogus"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr == "error: jobs/ingest_files.py: unrecognized arguments: --bogus\n"


def test_job_script_started_by_glue_ignores_glue_arguments_and_reads_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from etl_lib.cli import job_main

    glue = ["--JOB_NAME", "etl-suite-ingest_files", "--JOB_RUN_ID", "jr_1", "--TempDir", "s3://b/tmp", "--conf", "x=y"]
    missing = tmp_path / "missing.yaml"
    # Glue's own arguments (its --conf too) are no error: the suite's configuration, named --suite-conf, is read.
    assert job_main("ingest_files", [*glue, "--suite-conf", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert job_main("ingest_files", [*glue, "--suite-overrides", "lakehouse.root=/x"]) == 2
    assert "--suite-overrides: not a JSON object" in capsys.readouterr().err
    assert job_main("ingest_files", [*glue, "--suite-overrides", '{"no_such_section.key": 1}']) == 2
    assert "no_such_section" in capsys.readouterr().err


def test_job_script_started_by_glue_says_what_is_wrong(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(PROJECT / "jobs" / "ingest_files.py"),
            "--JOB_NAME",
            "j",
            "--JOB_ID",
            "j_1",
            "--suite-conf",
            str(tmp_path / "missing.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: ")
    assert "missing.yaml" in completed.stderr


def test_every_registered_job_is_a_function_of_the_jobs_package() -> None:
    # The registry names its jobs by text, which the import contracts of `make lint` cannot see: a job whose module
    # moved or whose function was renamed fails here, not at its first run.
    for spec in JOBS.values():
        assert spec.target.startswith("etl_lib.jobs."), spec
        job = spec.load()
        assert callable(job), spec
        assert job.__module__ == spec.target.partition(":")[0], spec


def test_a_quarantine_replay_of_the_speed_layer_s_silver_waits_for_the_speed_layer() -> None:
    from etl_lib.config import load_config

    base = Path(__file__).parents[2] / "conf" / "local.yaml"
    replay = JOBS["quality_replay"]
    assert replay.lock_for(load_config(base, ["run.table=silver/events"])) == "speed"
    assert replay.lock_for(load_config(base, ["run.table=silver/order_lines"])) is None
    assert JOBS["speed_layer"].lock_for(load_config(base, [])) == "speed"
    assert JOBS["batch_layer"].lock_for(load_config(base, ["run.table=silver/events"])) == "batch"
