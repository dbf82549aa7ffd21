"""Where the suite finds its own files: the source checkout, the JVM cache."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def project_root() -> Path | None:
    """Root of the source checkout this package runs from, or None when installed from a wheel.

    A checkout is recognised by ``setup.py`` and ``conf/`` beside the ``etl_lib`` package.
    """
    candidate = _PACKAGE_DIR.parent
    if (candidate / "setup.py").is_file() and (candidate / "conf").is_dir():
        return candidate
    return None


def require_project_root(purpose: str) -> Path:
    """Like :func:`project_root`, but a wheel install is an error naming ``purpose``."""
    from etl_lib.errors import StackError

    root = project_root()
    if root is None:
        raise StackError(f"{purpose} needs a source checkout of the suite (setup.py and conf/ beside etl_lib/)")
    return root


def default_jvm_cache() -> Path:
    """The folder ``make setup`` resolves JVM artifacts into: ``<checkout>/.cache/jvm``."""
    return require_project_root("the local JVM artifact cache") / ".cache" / "jvm"


def submit_properties() -> Path:
    """What ``make setup`` writes for ``spark-submit --properties-file``: ``<checkout>/.cache/spark-submit.conf``."""
    return require_project_root("the spark-submit properties file") / ".cache" / "spark-submit.conf"
