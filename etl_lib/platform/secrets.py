"""Secrets: where they come from, and how they are kept out of everything the suite writes.

A configuration never holds a secret, only a reference to where it lives (``password_secret``,
``key_secret``, ...):

- ``env:NAME``: the environment variable ``NAME``;
- ``file:PATH``: the first line of a file (a mounted secret);
- ``aws-secretsmanager:NAME`` or ``aws-secretsmanager:NAME#FIELD``: AWS Secrets Manager through boto3 (the
  secret string, or one field of it when it is a JSON object); ``secrets.aws_local_endpoint`` sends the call
  to the local endpoint of ``services.aws``;
- ``databricks:SCOPE/KEY``: a Databricks secret scope, through the runtime's ``dbutils``.

Every value resolved here is remembered for the life of the process, and :func:`scrub` replaces it, wherever it
appears, with ``***``: log records (through :class:`RedactingFilter`), run errors in ``audit/etl_runs`` and
OpenLineage events pass through it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_lib.errors import ConfigError

if TYPE_CHECKING:
    from etl_lib.config import SuiteConfig

REDACTED = "***"
#: What a secret reference looks like.
REFERENCE = re.compile(r"^(env|file|aws-secretsmanager|databricks):(\S+)$")
#: Credentials written into a URL (``scheme://user:password@host``) or into its parameters (``?password=x``).
_URL_CREDENTIALS = re.compile(r"(://[^:/@\s]+:)[^@/\s]+@")
_URL_PASSWORD = re.compile(r"([?&;](?:password|pwd|secret|token|apikey|api_key)=)[^&;\s]+", re.I)
#: Shorter values are not scrubbed from text: they would hide ordinary words and numbers.
_MIN_SCRUBBED = 4

_known: set[str] = set()
_lock = threading.Lock()


def remember(value: str) -> str:
    """Register ``value`` as a secret :func:`scrub` hides from now on; returns it unchanged."""
    if len(value) >= _MIN_SCRUBBED:
        with _lock:
            _known.add(value)
    return value


def scrub(text: str) -> str:
    """``text`` with every secret this process resolved, and credentials in URLs, replaced by ``***``."""
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    return _URL_PASSWORD.sub(rf"\1{REDACTED}", text)


def check_reference(value: str) -> str:
    """Validator of a secret reference in configuration.

    Raises:
        ValueError: if ``value`` is not ``env:``, ``file:``, ``aws-secretsmanager:`` or ``databricks:SCOPE/KEY``.
    """
    match = REFERENCE.match(value)
    if match is None:
        # The value is not repeated: what was typed here may be the secret itself.
        raise ValueError(
            "not a secret reference: env:NAME, file:PATH, aws-secretsmanager:NAME[#FIELD] "
            "or databricks:SCOPE/KEY (the secret itself never goes in configuration)"
        )
    if match.group(1) == "databricks" and match.group(2).count("/") != 1:
        raise ValueError("a Databricks secret is databricks:SCOPE/KEY")
    return value


def resolve(reference: str, config: SuiteConfig, what: str) -> str:
    """The secret ``reference`` names, remembered so that it is scrubbed from whatever the suite writes.

    Args:
        reference: a checked reference (see the module's description).
        config: for the AWS region and endpoint of Secrets Manager.
        what: the configuration key asking, for messages (``sources.orders_db.password_secret``).

    Returns:
        The secret, never empty.

    Raises:
        ConfigError: if the store cannot be reached, the secret does not exist or is empty.
    """
    kind, _, name = check_reference(reference).partition(":")
    if kind == "env":
        value = os.environ.get(name, "")
        where = f"environment variable {name}"
    elif kind == "file":
        path = Path(name).expanduser()
        value = first_line(path, what)
        where = f"file {path}"
    elif kind == "aws-secretsmanager":
        value = _from_secrets_manager(name, config, what)
        where = f"AWS Secrets Manager secret {name}"
    else:
        value = _from_databricks(name, what)
        where = f"Databricks secret {name}"
    if not value:
        raise ConfigError(f"{what}: {where} is missing or empty")
    return remember(value)


def first_line(path: Path, what: str) -> str:
    """The first line of a secret file, stripped; empty when the file is missing or empty.

    Raises:
        ConfigError: if the file exists but cannot be read as UTF-8 text.
    """
    if not path.is_file():
        return ""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{what}: cannot read {path}: {type(error).__name__}") from None
    return next(iter(text.splitlines()), "").strip()


def privacy_key(config: SuiteConfig, entity: str) -> bytes | None:
    """The key of the keyed hashes of ``entity`` (``privacy.hash_key_secret``), or None when it has no PII.

    Raises:
        ConfigError: if the secret cannot be read.
    """
    reference = config.privacy.hash_key_secret
    if reference is None or not config.privacy.pii.get(entity):
        return None
    return resolve(reference, config, "privacy.hash_key_secret").encode("utf-8")


def _from_secrets_manager(name: str, config: SuiteConfig, what: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    secret_id, _, field = name.partition("#")
    settings = config.secrets
    options: dict[str, Any] = {"region_name": settings.aws_region or config.services.aws.region}
    if settings.aws_local_endpoint:
        from etl_lib.services.aws import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

        options |= {
            "endpoint_url": config.services.aws.endpoint_url,
            "aws_access_key_id": LOCAL_ACCESS_KEY,
            "aws_secret_access_key": LOCAL_SECRET_KEY,
        }
    try:
        answer = boto3.client("secretsmanager", **options).get_secret_value(SecretId=secret_id)
    except (BotoCoreError, ClientError) as error:
        raise ConfigError(f"{what}: AWS Secrets Manager could not give secret {secret_id}: {error}") from None
    text = str(answer.get("SecretString") or "")
    if not field:
        return text
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{what}: secret {secret_id} is not a JSON object, so it has no field {field}") from None
    if not isinstance(document, dict) or field not in document:
        raise ConfigError(f"{what}: secret {secret_id} has no field {field}")
    return str(document[field])


def _from_databricks(name: str, what: str) -> str:
    scope, _, key = name.partition("/")
    try:
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]  # Databricks runtimes only
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(f"{what}: databricks:{name} needs a Databricks runtime (dbutils.secrets)") from None
    session = SparkSession.getActiveSession()
    if session is None:
        raise ConfigError(f"{what}: databricks:{name} needs the runtime's Spark session")
    return str(DBUtils(session).secrets.get(scope=scope, key=key))


class RedactingFilter(logging.Filter):
    """Log filter rewriting every record's message through :func:`scrub`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is logging's to report, not ours
            return True
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # The traceback is formatted later from the exception: format and scrub it now instead.
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactingFilter` on every handler of ``logger`` (the root logger by default), once."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
