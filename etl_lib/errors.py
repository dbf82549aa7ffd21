"""Named exceptions of the suite. Each says what was expected and what was found."""

from __future__ import annotations

#: Java exceptions that only carry another one (a failed task, a reflective call): the cause says what went wrong.
_JAVA_WRAPPERS = {
    "org.apache.spark.SparkException",
    "org.apache.spark.sql.streaming.StreamingQueryException",
    "java.util.concurrent.ExecutionException",
    "java.lang.reflect.InvocationTargetException",
    "java.lang.reflect.UndeclaredThrowableException",
}


def explain(error: BaseException) -> str:
    """One line saying what ``error`` is.

    For an error from the JVM it is the first Java exception of the cause chain that is not a mere wrapper (a
    failed Spark job, a reflective call), with its message.

    A Py4J error's own text is the whole Java stack trace, and its first line names only the method called.
    """
    try:
        return _explain(error)
    except Exception:  # noqa: BLE001 - the JVM may be gone; then the Python text is all there is
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _explain(error: BaseException) -> str:
    java = getattr(error, "java_exception", None)
    if java is not None:
        chain = [java]
        while len(chain) < 50:  # causes can loop; a chain this long is not worth following further
            cause = chain[-1].getCause()
            if cause is None or cause.equals(chain[-1]):
                break
            chain.append(cause)
        named = next((e for e in chain if str(e.getClass().getName()) not in _JAVA_WRAPPERS), chain[-1])
        text = f"{named.getClass().getName()}: {named.getMessage()}"
    else:
        text = f"{type(error).__name__}: {error}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class EtlSuiteError(Exception):
    """Base class of every error the suite raises on purpose."""

    exit_code = 1


class UsageError(EtlSuiteError):
    """The command line asked for something that does not exist (an unknown job, option or service)."""

    exit_code = 2


class ConfigError(EtlSuiteError):
    """A configuration file or override is missing, malformed or invalid."""

    exit_code = 2


class StackError(EtlSuiteError):
    """The installed Spark, Delta or JVM artifacts do not match the pinned stack."""


class ServiceError(EtlSuiteError):
    """A local service (Kafka, PostgreSQL, the AWS endpoint, ...) could not be started, checked or stopped."""


class ExtractError(EtlSuiteError):
    """An extract that cannot be read as its source is configured: no such sheet, a column without a name."""


class JobFailedError(EtlSuiteError):
    """A job ran and failed; the message names the step that failed."""


class AccessDeniedError(EtlSuiteError):
    """A consumer asked for a data product its domain has not granted it."""

    exit_code = 3


class SourceUnavailableError(EtlSuiteError):
    """A source (a database, a broker) could not be reached, even after the configured retries.

    Its exit code is EX_TEMPFAIL (75): a scheduler may run the job again later, and nothing moved.
    """

    exit_code = 75


class RunLockedError(EtlSuiteError):
    """Another run of the same job holds its lock on this lakehouse: this run did not start.

    Its exit code is EX_TEMPFAIL (75): a scheduler may run the job again once the other run ends.
    """

    exit_code = 75
