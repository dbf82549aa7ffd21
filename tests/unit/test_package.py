"""`make package` names no account of its own: what the definitions need of the user's is asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_lib.config import load_config
from etl_lib.deploy.package import REQUIRED, package
from etl_lib.errors import ConfigError


def test_without_the_accounts_keys_nothing_is_written_and_the_error_names_each(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        package(load_config(), tmp_path / "dist", "lakehouse_etl_suite-0.1.0-py3-none-any.whl")
    for key, _ in REQUIRED:
        assert key in str(refused.value)
    assert not (tmp_path / "dist").exists()


def test_a_role_that_is_not_an_iam_role_arn_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"deploy\.glue\.role_arn"):
        load_config(overrides=["deploy.glue.role_arn=etl-suite-glue"])
