"""Resolve the suite's JVM artifacts with Maven into a local cache, and find them again offline.

``make setup`` calls ``python -m etl_lib.deploy.jvm resolve``. Maven reads the checked-in poms under
``jvm/`` with versions from ``stack.toml``; the resulting jars are copied into
``.cache/jvm/<set>/`` together with a manifest. A later call with the same poms and versions finds the
manifest and does nothing, so setup is idempotent and works offline once done. Local SparkSessions
read the manifest at start and never touch the network.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from etl_lib.config.paths import default_jvm_cache, require_project_root, submit_properties
from etl_lib.errors import StackError
from etl_lib.runtime.jars import (
    MANIFEST,
    JarSet,
    _fingerprint,
    _pyspark_jar_dir,
    _read_manifest,
    artifact_name,
    cached_jars,
    deequ_jar_set,
    kafka_broker_jar_set,
    spark_jar_set,
)
from etl_lib.runtime.stack import active_line, load_stack


def _run_maven(command: list[str], failure: str) -> None:
    """Run Maven; its last 30 lines of output after ``failure`` when it fails."""
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-30:])
        raise StackError(f"{failure}:\n{tail}")


def _copy_dependencies(pom: Path, jar_set: JarSet, into: Path) -> None:
    """Have Maven copy the runtime dependencies of ``pom`` with ``jar_set``'s properties into ``into``."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (`mvn`) is not on PATH; it is needed once to resolve the suite's jars")
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--settings",
        str(pom.parent.parent / "settings.xml"),
        "--file",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={into}",
        *(f"-D{key}={value}" for key, value in sorted(jar_set.properties.items())),
    ]
    _run_maven(command, f"Maven failed to resolve {jar_set.name} from {pom}")


def resolve(jar_set: JarSet, cache_dir: Path | None = None, *, force: bool = False) -> list[Path]:
    """Resolve ``jar_set`` with Maven into the cache unless the cache already holds it.

    Args:
        jar_set: the set of jars (its pom under ``jvm/``, its Maven properties).
        cache_dir: the cache holding one folder per set; None for the default (``.cache/jvm``).
        force: resolve again even when the cache's manifest matches the pom and versions.

    Returns:
        The jars of the set, in a stable order.

    Raises:
        StackError: if Maven is missing or fails.
    """
    directory = (cache_dir or default_jvm_cache()) / jar_set.name
    pom = require_project_root("resolving JVM artifacts") / "jvm" / jar_set.pom
    pom_text = pom.read_text(encoding="utf-8")
    fingerprint = _fingerprint(jar_set, pom_text)
    manifest = _read_manifest(directory)
    if not force and manifest is not None and manifest.get("fingerprint") == fingerprint:
        try:
            return cached_jars(jar_set, cache_dir)
        except StackError:
            pass  # a jar went missing: resolve again below

    with tempfile.TemporaryDirectory(prefix=f"etl-suite-{jar_set.name}-") as tmp:
        _copy_dependencies(pom, jar_set, Path(tmp))
        resolved = sorted(Path(tmp).glob("*.jar"))
        skipped: list[str] = []
        if jar_set.skip_spark_provided:
            provided = {artifact_name(jar.name) for jar in _pyspark_jar_dir().glob("*.jar")}
            skipped = [jar.name for jar in resolved if artifact_name(jar.name) in provided]
            resolved = [jar for jar in resolved if artifact_name(jar.name) not in provided]
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        for jar in resolved:
            shutil.copy2(jar, directory / jar.name)
    manifest_data = {
        "set": jar_set.name,
        "fingerprint": fingerprint,
        "properties": jar_set.properties,
        "jars": [jar.name for jar in resolved],
        "skipped_as_provided_by_pyspark": skipped,
    }
    (directory / MANIFEST).write_text(json.dumps(manifest_data, indent=2) + "\n", encoding="utf-8")
    return [directory / jar.name for jar in resolved]


def write_submit_properties(jars: list[Path], target: Path | None = None) -> Path:
    """Write the properties ``spark-submit --properties-file`` needs to run a job of the suite locally.

    ``spark-submit jobs/<job>.py`` starts the driver JVM before any Python runs, so jars the session builder names
    later never reach the driver's classpath: Spark's documented ways are ``--jars`` or a properties file. This
    writes the file into the checkout's cache (nothing into the installed pyspark): the session's jars and the
    settings every session of the suite starts with.

    Args:
        jars: the session's jars (``spark.jars``).
        target: the file; None for ``.cache/spark-submit.conf`` of the checkout.

    Returns:
        The file written.
    """
    from etl_lib.runtime.session import SESSION_CONF

    target = target or submit_properties()
    lines = [
        "# Written by make setup: spark-submit --properties-file <this file> jobs/<job>.py",
        f"spark.jars {','.join(str(jar) for jar in jars)}",
        *(f"{key} {value}" for key, value in SESSION_CONF.items()),
        "",
    ]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m etl_lib.deploy.jvm resolve|show [--line NAME]``."""
    parser = argparse.ArgumentParser(prog="python -m etl_lib.deploy.jvm", description=__doc__)
    parser.add_argument("action", choices=["resolve", "show"])
    parser.add_argument("--line", help="Spark line from stack.toml (default: the installed pyspark's line)")
    parser.add_argument("--force", action="store_true", help="resolve again even if the cache is current")
    args = parser.parse_args(argv)
    try:
        line = load_stack().line(args.line) if args.line else active_line()
        deequ = deequ_jar_set(line)
        session_jars = spark_jar_set(line)
        for jar_set in (session_jars, kafka_broker_jar_set(), *([deequ] if deequ else [])):
            jars = resolve(jar_set, force=args.force) if args.action == "resolve" else cached_jars(jar_set)
            print(f"{jar_set.name}: {len(jars)} jars in {jars[0].parent if jars else '-'}")
            # Only the session's own jars go to spark-submit's properties (Deequ's are loaded by its benchmark).
            if jar_set is session_jars and args.action == "resolve" and line == active_line():
                print(f"spark-submit properties: {write_submit_properties(jars)}")
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
