"""Secrets and personal data: where secrets come from, how PII columns are treated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from etl_lib.config.types import Identifier, SecretRef, _Section


class SecretsConfig(_Section):
    """Where ``aws-secretsmanager:`` secret references are looked up."""

    aws_region: str | None = None
    #: Ask the local AWS endpoint of ``services.aws`` instead of AWS.
    aws_local_endpoint: bool = False


PiiTreatment = Literal["hash", "mask"]


class PrivacyConfig(_Section):
    """Personal data in silver: columns of an entity replaced by a keyed hash or masked.

    ``hash`` gives HMAC-SHA256 of the value under the key ``hash_key_secret`` names, as 64 hex characters: equal
    values still join and count alike, and nobody without the key can test a guess. ``mask`` keeps the last four
    characters and stars the rest (values of four characters or fewer are starred whole). Bronze keeps what it
    landed, as it always does, so access to bronze is what a deployment restricts.
    """

    #: entity -> column -> hash | mask; only text columns.
    pii: dict[Identifier, dict[Identifier, PiiTreatment]] = Field(default_factory=dict)
    #: The key of the keyed hash (a secret reference); needed as soon as a column is hashed.
    hash_key_secret: SecretRef | None = None
