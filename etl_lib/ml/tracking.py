"""MLflow: where runs and models are kept, and which model version is the one to score with.

Scoring never asks for "the latest" model: it resolves the registered model's alias (``champion``) to
a version once, on the driver, and every row it scores names that version. Moving the alias to another
version changes what the next run uses, without a code change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from etl_lib.config import MlConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, and where its files are (a URI workers can load from)."""

    name: str
    version: str
    uri: str


#: What a scikit-learn model the suite logs needs to be loaded again (skops serialises it).
MODEL_PACKAGES = ("mlflow", "numpy", "pandas", "scikit-learn", "scipy", "skops")


def model_requirements() -> list[str]:
    """The pinned requirements of a logged model: the versions this process trained it with.

    Stated rather than left to MLflow to infer: inference imports the model in a subprocess (about 6 s a
    model) and picks up whatever the process had imported, test runners included.
    """
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in MODEL_PACKAGES]


def tracking_uri(ml: MlConfig) -> str:
    """The configured tracking URI, or the local SQLite store under ``ml.work_dir``."""
    if ml.tracking_uri:
        return ml.tracking_uri
    Path(ml.work_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(ml.work_dir) / 'mlflow.db'}"


def client(ml: MlConfig) -> Any:
    """An MLflow client on the configured store (tracking and registry)."""
    from mlflow import MlflowClient

    uri = tracking_uri(ml)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def use(ml: MlConfig) -> str:
    """Point the ``mlflow`` module at the configured store and experiment; returns the experiment id."""
    import mlflow

    uri = tracking_uri(ml)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.get_experiment_by_name(ml.experiment)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if ml.tracking_uri is None:
        artifacts = Path(ml.work_dir) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        location = artifacts.as_uri()
    return str(mlflow.create_experiment(ml.experiment, artifact_location=location))


def promote(ml: MlConfig, name: str, version: str) -> None:
    """Point the scoring alias of model ``name`` at ``version``.

    Args:
        ml: the ``ml`` section (the tracking URI, the alias).
        name: the registered model's name.
        version: the registered version, as MLflow numbers it (``"3"``).
    """
    client(ml).set_registered_model_alias(name, ml.alias, version)
    log.info("model %s version %s is now %s", name, version, ml.alias)


def champion(ml: MlConfig, name: str) -> ModelRef | None:
    """The version of ``name`` the scoring alias points at, or None when there is none."""
    from mlflow.exceptions import MlflowException

    registry = client(ml)
    try:
        version = registry.get_model_version_by_alias(name, ml.alias)
    except MlflowException:
        return None
    uri = registry.get_model_version_download_uri(name, version.version)
    return ModelRef(name, str(version.version), str(uri))


def champion_if_any(ml: MlConfig, name: str) -> tuple[ModelRef | None, str | None]:
    """Like :func:`champion`, with the reason when there is none; the local store is not created for it."""
    if ml.tracking_uri is None and not (Path(ml.work_dir) / "mlflow.db").is_file():
        return None, f"no model registry yet at {tracking_uri(ml)} (run `etl-suite run train_models`)"
    found = champion(ml, name)
    if found is None:
        return None, f"no model {name!r} under alias {ml.alias!r} in {tracking_uri(ml)}"
    return found, None
