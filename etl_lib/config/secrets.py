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

import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_lib.errors import ConfigError

if TYPE_CHECKING:
    from etl_lib.config.models.suite import SuiteConfig

REDACTED = "***"
#: The local AWS endpoint accepts any credentials; these are placeholders, not secrets.
LOCAL_ACCESS_KEY = "local"
LOCAL_SECRET_KEY = "local"  # noqa: S105 - not a secret: the loopback endpoint ignores it
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


#: The last word of a key whose value is a secret itself (``password``, ``session.token``, ``client_secret``).
_SECRET_WORDS = {
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "apikey",
    "secretkey",
    "accesskey",
}
#: Words before a final ``key`` that make it a secret (``fs.s3a.secret.key``, ``api_key``, Azure's account key).
_KEY_KINDS = {"secret", "access", "api", "private", "account", "encryption", "signing", "client", "master", "shared"}
#: Keys whose value says where a secret lives, never the secret: ``password_env``, ``password_file``.
_POINTER_SUFFIXES = ("_env", "_file")
#: Secrets inside a value: credentials in a URL, ``?password=``, a JAAS ``password="..."``.
_SECRET_IN_TEXT = re.compile(r"://[^:/@\s]+:[^@/\s]+@|[?&;](password|pwd|secret|token|sig)=|\bpassword\s*=\s*\S", re.I)
_WORDS = re.compile(r"[._\-\s]+|(?<=[a-z0-9])(?=[A-Z])")


def names_a_secret(name: str, value: object = None) -> bool:
    """True when configuration key ``name`` holds a secret itself (not where one lives).

    The key's words are read (``fs.s3a.secret.key``, ``awsSecretAccessKey``, ``sfPassword``): it is a secret when
    its last word is one (password, token, secret, ...), or is ``key`` after secret, access, api, account, ...
    Keys ending in ``_env`` or ``_file``, and ``*_secret`` keys holding a secret reference, only point to one.
    """
    if name.endswith(_POINTER_SUFFIXES):
        return False
    if name.endswith("_secret") and isinstance(value, str) and REFERENCE.match(value):
        return False
    words = [word.lower() for word in _WORDS.split(name) if word]
    if not words:
        return False
    if words[-1] in _SECRET_WORDS:
        return True
    if words[-1] == "key" and len(words) > 1 and words[-2] in _KEY_KINDS:
        return True
    # Azure: fs.azure.account.key.<account host> and fs.azure.sas.<container>.<account host>.
    pairs = list(itertools.pairwise(words))
    return ("account", "key") in pairs or (words[:3] == ["fs", "azure", "sas"] and "provider" not in words)


def secrets_written_in(data: Any, key: str = "", name: str = "") -> list[str]:
    """Dotted keys of ``data`` holding what looks like a secret (a config file or an override).

    Args:
        data: the parsed YAML or JSON: mappings, lists and plain values.
        key: the dotted key of ``data`` itself (``spark.conf.fs.s3a.secret.key``, ``jobs[0]``), the prefix of the
            keys returned; empty at the top.
        name: the last key of the mapping holding ``data``, whose words tell whether it is a secret; for a list
            item, the list's. Empty at the top.
    """
    if isinstance(data, Mapping):
        found: list[str] = []
        for inner, value in data.items():
            found += secrets_written_in(value, f"{key}.{inner}" if key else str(inner), str(inner))
        return found
    if isinstance(data, list | tuple):
        return [hit for i, item in enumerate(data) for hit in secrets_written_in(item, f"{key}[{i}]", name)]
    if data in (None, "") or isinstance(data, bool):
        return []
    if names_a_secret(name, data):
        return [key]
    if isinstance(data, str) and _SECRET_IN_TEXT.search(data):
        return [key]
    return []


def redact(value: Any, key: str = "") -> Any:
    """Copy of ``value`` with secret-looking entries replaced by ``***``.

    A key that names where a secret comes from (``password_env``) is kept: it is not the secret.
    Values of the form ``scheme://user:password@host`` lose their password too.
    """
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if key and value not in (None, "") and names_a_secret(key, value):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    return value


def redacted(config: SuiteConfig) -> dict[str, Any]:
    """The configuration as plain data, safe to log or store."""
    result: dict[str, Any] = redact(config.model_dump(mode="json"))
    return result


def secret_from_env(variable: str) -> str | None:
    """The secret held by environment variable ``variable``, or None when it is unset or empty.

    The value is remembered as a secret, so that logs and audit rows never show it.
    """
    value = os.environ.get(variable)
    return remember(value) if value else None
