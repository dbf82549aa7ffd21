"""Secret references, their resolution, and scrubbing what the suite writes of them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from etl_lib.config import load_config, secrets
from etl_lib.errors import ConfigError

PROJECT = Path(__file__).resolve().parents[2]


def test_references_name_a_store_never_a_value() -> None:
    for good in ("env:PG_PASSWORD", "file:/run/secrets/pg", "aws-secretsmanager:etl/pg#password", "databricks:etl/pg"):
        assert secrets.check_reference(good) == good
    for bad in ("hunter2", "env:", "vault:x", "databricks:scope-only", "env:A B"):
        with pytest.raises(ValueError, match="secret"):
            secrets.check_reference(bad)


def test_resolving_from_the_environment_and_files_remembers_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(PROJECT / "conf" / "local.yaml")
    monkeypatch.setenv("UNIT_SECRET_A", "env-secret-7f3a")
    (tmp_path / "pg").write_text("file-secret-91c2\nsecond line ignored\n", encoding="utf-8")
    assert secrets.resolve("env:UNIT_SECRET_A", config, "x.password_secret") == "env-secret-7f3a"
    assert secrets.resolve(f"file:{tmp_path / 'pg'}", config, "x.password_secret") == "file-secret-91c2"
    assert secrets.scrub("a env-secret-7f3a b file-secret-91c2 c") == "a *** b *** c"


def test_a_missing_secret_is_a_config_error_naming_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(PROJECT / "conf" / "local.yaml")
    monkeypatch.delenv("UNIT_SECRET_MISSING", raising=False)
    with pytest.raises(ConfigError, match=r"^sources.db.password_secret: environment variable UNIT_SECRET_MISSING is"):
        secrets.resolve("env:UNIT_SECRET_MISSING", config, "sources.db.password_secret")
    with pytest.raises(ConfigError, match=r"^k: file .*nothing is missing or empty$"):
        secrets.resolve(f"file:{tmp_path / 'nothing'}", config, "k")
    with pytest.raises(ConfigError, match=r"^k: databricks:s/k needs a Databricks runtime"):
        secrets.resolve("databricks:s/k", config, "k")


def test_scrub_hides_url_credentials_even_of_secrets_never_resolved() -> None:
    assert secrets.scrub("jdbc:postgresql://etl:pw-1@db:5432/x failed") == "jdbc:postgresql://etl:***@db:5432/x failed"
    assert (
        secrets.scrub("jdbc:sqlserver://db;user=a;password=pw-2;x=1") == "jdbc:sqlserver://db;user=a;password=***;x=1"
    )
    assert secrets.scrub("https://h/x?token=t-3&a=b") == "https://h/x?token=***&a=b"
    # Too short to scrub without hiding ordinary text.
    secrets.remember("abc")
    assert secrets.scrub("abc") == "abc"


def test_log_records_are_scrubbed_with_their_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    secrets.remember("log-secret-5d1e")
    logger = logging.getLogger("etl_lib.unit_secrets")
    caplog.handler.addFilter(secrets.RedactingFilter())
    with caplog.at_level(logging.INFO, logger="etl_lib.unit_secrets"):
        logger.info("connecting with %s to %s", "log-secret-5d1e", "db")
        try:
            raise RuntimeError("refused: password log-secret-5d1e is wrong")
        except RuntimeError:
            logger.exception("failed")
    assert "log-secret-5d1e" not in caplog.text
    assert "connecting with *** to db" in caplog.text
    assert "RuntimeError: refused: password *** is wrong" in caplog.text


def test_install_log_redaction_puts_one_filter_on_each_handler() -> None:
    logger = logging.getLogger("etl_lib.unit_secrets_install")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        secrets.install_log_redaction(logger)
        secrets.install_log_redaction(logger)
        assert [type(f) for f in handler.filters] == [secrets.RedactingFilter]
    finally:
        logger.removeHandler(handler)
