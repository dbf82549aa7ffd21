"""Reading a configuration: layered YAML files, ``--set`` overrides, validation with readable errors."""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from etl_lib.config.models.suite import SuiteConfig
from etl_lib.config.paths import project_root
from etl_lib.config.secrets import secrets_written_in
from etl_lib.errors import ConfigError


def default_config_path() -> Path:
    """``conf/local.yaml`` of the checkout: the embedded default.

    Raises:
        ConfigError: when the library runs from a wheel (a platform), which carries no configuration of its own:
            a job there is given its file (``--conf``, which ``make package`` writes into every job definition).
    """
    root = project_root()
    if root is None:
        raise ConfigError(
            "no configuration given, and the suite runs from an installed package, not a checkout with "
            "conf/local.yaml: pass --conf PATH (the job definitions `make package` writes do)"
        )
    return root / "conf" / "local.yaml"


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (``X``, ``X | None``, ``Annotated[X | Y, ...]``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        candidates = list(typing.get_args(annotation))
    else:
        candidates = [annotation]
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def override_path(dotted: str) -> list[str]:
    """Split a dotted ``--set`` key into the path of mapping keys it addresses.

    Keys of free-form maps may contain dots themselves (``spark.conf.spark.sql.shuffle.partitions``):
    once the path enters such a map, the rest of the key is one map key. Maps of sections
    (``sources.<name>``) take one segment and go on inside the section.
    """
    parts = dotted.split(".")
    path: list[str] = []
    models: list[type[BaseModel]] = [SuiteConfig]
    index = 0
    while index < len(parts):
        part = parts[index]
        path.append(part)
        index += 1
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if not fields:
            models = []
            continue
        annotation = fields[0].annotation
        if typing.get_origin(annotation) is dict:
            value_models = _models_of(typing.get_args(annotation)[1])
            if not value_models:
                if index < len(parts):
                    path.append(".".join(parts[index:]))
                break
            if index < len(parts):
                path.append(parts[index])
                index += 1
            models = value_models
        else:
            models = _models_of(annotation)
    return path


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and YAML-typed value.

    Raises:
        ConfigError: if ``text`` is not ``KEY=VALUE`` with a dotted key.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not all(key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. lakehouse.root=/tmp/lake")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML: {error}") from None
    except ValueError:
        # YAML took it for a date or time that does not exist (2011-13-45): the text goes to validation as it is.
        value = raw.strip()
    return override_path(key), value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with every ``KEY=VALUE`` override applied (later ones win)."""
    result = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise ConfigError(f"--set {text!r}: {prefix} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deep_copy(value) if isinstance(value, Mapping) else value for key, value in data.items()}


def _format_errors(source: str, error: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        # A union member's name in the location (`sources.x.jdbc.url`) says nothing the key does not.
        parts = [str(part) for part in item["loc"] if part not in ("files", "jdbc")]
        key = ".".join(parts)
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling, or remove it)"
        elif item["type"] == "union_tag_not_found":
            message = "required key `kind` is missing (files or jdbc)"
        elif item["type"] == "union_tag_invalid":
            message = f"kind: {item['ctx']['tag']!r} is not one of {item['ctx']['expected_tags']}"
        lines.append(f"  {key}: {message}" if key else f"  {message}")
    return "\n".join(lines)


def validate_config(data: Mapping[str, Any], source: str = "<memory>") -> SuiteConfig:
    """Validate an already-parsed mapping into a :class:`SuiteConfig`.

    Raises:
        ConfigError: naming ``source`` and every invalid key.
    """
    written = secrets_written_in(data)
    if written:
        raise ConfigError(
            f"{source}: secrets are never written in configuration, found one under {', '.join(written)}; "
            "name where it lives instead (password_secret: env:NAME | aws-secretsmanager:NAME | "
            "databricks:SCOPE/KEY, or the environment variable in *_env)"
        )
    try:
        config = SuiteConfig.model_validate(dict(data))
    except ValidationError as error:
        raise ConfigError(_format_errors(source, error)) from None
    return config.model_copy(update={"source_file": source})


def _read_mapping(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found") from None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read configuration: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{file}: not valid YAML: {error}") from None
    except ValueError as error:
        # A date or time that does not exist (2011-13-45) fails while YAML builds it.
        raise ConfigError(f"{file}: not valid YAML: a date or time that does not exist ({error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``: mappings merge key by key, anything else is replaced.

    ``null`` over an inherited mapping removes it (``sources: {online_retail: null}`` drops that source).
    """
    merged = _deep_copy(base)
    for key, value in override.items():
        if value is None and isinstance(merged.get(key), Mapping):
            del merged[key]
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _deep_copy(value) if isinstance(value, Mapping) else value
    return merged


def _read_with_bases(file: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = file.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(path) for path in (*chain, resolved))
        raise ConfigError(f"{file}: `extends` makes a cycle: {cycle}")
    data = _read_mapping(file)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{file}: extends: expected the path of a configuration file")
    return deep_merge(_read_with_bases(file.parent / base, (*chain, resolved)), data)


def read_layered(file: str | Path) -> dict[str, Any]:
    """A configuration file as data, its ``extends`` chain laid flat (not validated, no overrides)."""
    return _read_with_bases(Path(file))


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> SuiteConfig:
    """Read, override and validate a configuration file.

    A file may start from another with ``extends: <path relative to it>``; its own keys are laid over
    the other's (mappings merge, values are replaced).

    Args:
        path: YAML file; ``None`` means the embedded default ``conf/local.yaml``.
        overrides: ``KEY=VALUE`` strings, applied in order after the file is read.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: if a file is missing, is not a YAML mapping, or the result fails validation.
    """
    file = Path(path) if path is not None else default_config_path()
    data = _read_with_bases(file)
    return validate_config(apply_overrides(data, overrides), source=str(file))
