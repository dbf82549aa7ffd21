"""Class-data sharing for the driver JVM of local sessions: a cold driver starts from an archive of classes.

A local session's driver JVM loads and verifies some twenty thousand classes (Spark SQL, Delta, the
connectors) before its first job finishes, and does it again in every new process. ``make setup`` runs
the batch layer once on a sample of the bundled extract with ``-XX:ArchiveClassesAtExit`` (a dynamic
archive on top of the JDK's own) and keeps the archive in the JVM cache; later local sessions start
their driver with ``-XX:SharedArchiveFile`` and map those classes instead of loading them.

The JVM maps an archive only onto the class path it was written with, and refuses a class path holding
a non-empty directory. Spark puts its configuration directory first on the driver's class path, and
``make setup`` writes ``spark-defaults.conf`` there for ``spark-submit``; a local session names every
option of that file itself, so it starts with an empty configuration directory of the cache instead.

An archive is named after what it was written from (the JDK, pyspark, the suite's jar set). The JVM
checks it again when it maps it and, with ``-Xshare:auto``, starts without it, quietly, if it does not
fit; a session never fails because of an archive. Sessions started by ``spark-submit``, sessions whose
environment names its own Spark or Hadoop configuration, and ``spark.class_sharing: false`` use none.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from etl_lib.config import SparkConfig
from etl_lib.errors import StackError
from etl_lib.platform.jvm import MANIFEST, SPARK_DEFAULTS_MARKER, spark_jar_set
from etl_lib.platform.paths import default_jvm_cache
from etl_lib.platform.stack import active_line
from etl_lib.services.process import log_tail

log = logging.getLogger(__name__)

ARCHIVE_DIR = "cds"
#: Environment variables that put a folder of their own on the driver's class path.
_CLASS_PATH_DIRS = ("SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR")
#: Messages of the JVM about an archive it cannot map stay off the console: it starts without it.
_QUIET = ("-Xshare:auto", "-Xlog:cds=off", "-Xlog:cds+dynamic=off")
#: Rows of the bundled extract the archive's run reads: enough to take every path of the batch layer.
SAMPLE_ROWS = 20_000


@dataclass(frozen=True)
class DriverSharing:
    """How a local session's driver JVM is started: its extra Java options and its configuration folder."""

    java_options: tuple[str, ...]
    conf_dir: Path


def _java_home() -> Path | None:
    """The JDK ``spark-submit`` starts the driver with: ``JAVA_HOME``, else the ``java`` on ``PATH``."""
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"]).resolve()
    java = shutil.which("java")
    return Path(java).resolve().parent.parent if java else None


def _pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def archive_path(cache_dir: Path | None = None) -> Path | None:
    """Where the archive for this JDK, pyspark and jar set is (or would be); None without a JDK or jars.

    The name changes when any of them does, so an archive of another JDK or jar set is never picked.
    """
    import pyspark

    cache = cache_dir or default_jvm_cache()
    java_home = _java_home()
    manifest = cache / spark_jar_set(active_line()).name / MANIFEST
    if java_home is None or not manifest.is_file():
        return None
    release = java_home / "release"
    identity = {
        "java_home": str(java_home),
        "java_release": release.read_text(encoding="utf-8") if release.is_file() else "",
        "pyspark": pyspark.__version__,
        "jars": json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint", ""),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return cache / ARCHIVE_DIR / f"driver-{active_line().name}-{digest}.jsa"


def _conf_dir(cache: Path) -> Path:
    return cache / ARCHIVE_DIR / "conf"


def _why_not_shared() -> str | None:
    """Why this process's environment rules the archive out, or None if it does not."""
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        return "the driver JVM already runs (spark-submit)"
    named = [name for name in _CLASS_PATH_DIRS if os.environ.get(name)]
    if named:
        return f"{', '.join(named)} names a configuration folder of its own"
    spark_conf = _pyspark_home() / "conf"
    if spark_conf.is_dir():
        foreign = [
            entry.name
            for entry in spark_conf.iterdir()
            if entry.name != "spark-defaults.conf"
            or not entry.read_text(encoding="utf-8").startswith(SPARK_DEFAULTS_MARKER)
        ]
        if foreign:
            return f"{spark_conf} holds configuration the suite did not write ({', '.join(sorted(foreign))})"
    return None


def driver_sharing(spark: SparkConfig) -> DriverSharing | None:
    """The options that start this local session's driver from the archive, or None to start it as usual."""
    if not spark.class_sharing:
        return None
    cache = Path(spark.jvm_cache) if spark.jvm_cache else default_jvm_cache()
    archive = archive_path(cache)
    if archive is None or not archive.is_file():
        log.debug("no class-data archive for this JDK and jar set (make setup writes it)")
        return None
    reason = _why_not_shared()
    if reason is not None:
        log.debug("the driver starts without its class-data archive: %s", reason)
        return None
    conf_dir = _conf_dir(cache)
    conf_dir.mkdir(parents=True, exist_ok=True)
    return DriverSharing((f"-XX:SharedArchiveFile={archive}", *_QUIET), conf_dir)


def with_java_options(conf: dict[str, str], options: tuple[str, ...]) -> dict[str, str]:
    """``conf`` with ``options`` after the driver's own extra Java options (a path with spaces is quoted)."""
    quoted = " ".join(f'"{option}"' if " " in option else option for option in options)
    own = conf.get("spark.driver.extraJavaOptions", "").strip()
    return {**conf, "spark.driver.extraJavaOptions": f"{own} {quoted}".strip()}


def _sample(target: Path) -> Path:
    """The first :data:`SAMPLE_ROWS` rows of the bundled extract, as a parquet folder under ``target``."""
    import pyarrow.parquet as pq

    from etl_lib.platform.paths import require_project_root

    source = require_project_root("writing the class-data archive") / "data" / "online_retail"
    rows = pq.read_table(source).slice(0, SAMPLE_ROWS)
    folder = target / "online_retail"
    folder.mkdir(parents=True)
    pq.write_table(rows, folder / "sample.parquet")
    return folder


def write_archive(cache_dir: Path | None = None, *, force: bool = False) -> Path | None:
    """Run the batch layer on a sample with the archive option and keep the archive the driver writes at exit.

    Returns:
        The archive, or None when there is no JDK or resolved jar set to write one for.

    Raises:
        StackError: if the environment rules the archive out or the JVM writes none.
        EtlSuiteError: whatever the batch layer raises.
    """
    from pyspark import SparkContext

    from etl_lib.config import load_config
    from etl_lib.platform.paths import require_project_root
    from etl_lib.platform.runner import run_job
    from etl_lib.platform.session import start_local_session

    cache = cache_dir or default_jvm_cache()
    archive = archive_path(cache)
    if archive is None:
        return None
    if archive.is_file() and not force:
        return archive
    reason = _why_not_shared()
    if reason is not None:
        raise StackError(f"cannot write the class-data archive: {reason}")
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".jsa.partial")
    partial.unlink(missing_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="etl-suite-cds-") as tmp:
        work = Path(tmp)
        config = load_config(
            require_project_root("writing the class-data archive") / "conf" / "local.yaml",
            [
                f"lakehouse.root={work / 'lakehouse'}",
                f"sources.online_retail.path={_sample(work)}",
                f"spark.conf.spark.sql.warehouse.dir={work / 'warehouse'}",
                f"ml.work_dir={work / 'mlflow'}",  # no model store of the checkout is read or made
                f"services.work_dir={work / 'services'}",
                "spark.conf.spark.ui.showConsoleProgress=false",
                f"spark.jvm_cache={cache}",
            ],
        )
        conf_dir = _conf_dir(cache)
        conf_dir.mkdir(parents=True, exist_ok=True)
        dump = DriverSharing(
            (f"-XX:ArchiveClassesAtExit={partial}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"), conf_dir
        )
        session = start_local_session(config.spark, dump)
        gateway = SparkContext._gateway
        try:
            run_job("batch_layer", config, session)
        finally:
            session.stop()
            # The JVM writes the archive as it exits, which it does when its stdin (the pipe from this
            # process) closes; wait for it rather than for this process's own exit.
            process = getattr(gateway, "proc", None)
            if gateway is not None:
                gateway.shutdown()
            if process is not None:
                if process.stdin is not None:
                    process.stdin.close()
                process.wait(timeout=600)
    if not partial.is_file() or partial.stat().st_size == 0:
        raise StackError(f"the driver JVM wrote no class-data archive at {partial}")
    for stale in archive.parent.glob(f"driver-{active_line().name}-*.jsa*"):
        if stale != partial:
            stale.unlink()
    partial.rename(archive)
    print(f"class-data archive written in {time.monotonic() - started:.0f} s", flush=True)
    return archive


def _describe(archive: Path | None) -> str:
    if archive is None:
        return "class-data archive: none (no JDK on PATH or jars not resolved)"
    if archive.is_file():
        return f"class-data archive: {archive} ({archive.stat().st_size >> 20} MB)"
    return f"class-data archive: {archive} (missing; make setup writes it)"


def _write_in_child(force: bool) -> int:
    """Write the archive in a child process whose Spark output goes to a log beside it, not to the console."""
    archive = archive_path()
    if archive is None or (archive.is_file() and not force):
        print(_describe(archive))
        return 0
    reason = _why_not_shared()
    if reason is not None:
        print(f"class-data archive: not written, local sessions start without one: {reason}")
        return 0
    archive.parent.mkdir(parents=True, exist_ok=True)
    log_file = archive.parent / "write.log"
    print(f"class-data archive: running the batch layer on {SAMPLE_ROWS:,} rows to write it (log: {log_file})")
    command = [sys.executable, "-m", "etl_lib.platform.cds", "write", "--in-process", *(["--force"] if force else [])]
    with log_file.open("w", encoding="utf-8") as output:
        completed = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        print(f"error: writing the class-data archive failed:\n{log_tail(log_file, 30)}", file=sys.stderr)
        return 1
    for line in log_file.read_text(encoding="utf-8").splitlines():
        if line.startswith("class-data archive"):
            print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m etl_lib.platform.cds write|show [--force]``."""
    parser = argparse.ArgumentParser(prog="python -m etl_lib.platform.cds", description=__doc__)
    parser.add_argument("action", choices=["write", "show"])
    parser.add_argument("--force", action="store_true", help="write the archive again even if it exists")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.action == "write" and not args.in_process:
        return _write_in_child(args.force)
    try:
        archive = write_archive(force=args.force) if args.action == "write" else archive_path()
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(_describe(archive))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
