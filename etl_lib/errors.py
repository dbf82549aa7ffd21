"""Named exceptions of the suite. Each says what was expected and what was found."""

from __future__ import annotations


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
