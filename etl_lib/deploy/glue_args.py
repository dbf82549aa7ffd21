"""Job arguments as AWS Glue passes them, read the way ``awsglue.utils.getResolvedOptions`` reads them.

Glue starts a job script with its own arguments (``--JOB_ID``, ``--JOB_RUN_ID``, ``--TempDir``,
``--job-bookmark-option`` and more) beside the job's, every one as ``--KEY VALUE``. A job's arguments are a
map, so no key can be given twice, and Glue reserves ``--conf`` for Spark settings. The suite's arguments
therefore have Glue-safe names there:

- ``--suite-conf PATH``: the configuration file (``--conf`` elsewhere);
- ``--suite-overrides JSON``: a JSON object of configuration keys and values, applied in order (the
  repeatable ``--set KEY=VALUE`` elsewhere);
- the job's own options under their usual names (``--process-date 2011-12-10``).

A job script knows it was started the Glue way when its arguments hold ``--JOB_NAME``. With the
``awsglue`` package present (on Glue), its ``getResolvedOptions`` reads the options; without it (tests,
Glue-style runs elsewhere) an equivalent parser does: options are ``--KEY VALUE`` or ``--KEY=VALUE``,
the last occurrence wins and arguments the job does not know are left alone.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence

from etl_lib.errors import UsageError

#: The suite's own arguments under Glue (``--conf`` is Glue's, and keys cannot repeat).
SUITE_CONF = "suite-conf"
SUITE_OVERRIDES = "suite-overrides"
JOB_NAME = "JOB_NAME"


def is_glue_invocation(argv: Sequence[str]) -> bool:
    """Whether a job script was started with Glue's arguments (they always include ``--JOB_NAME``)."""
    return _given(argv, JOB_NAME)


def _given(argv: Sequence[str], option: str) -> bool:
    return any(arg == f"--{option}" or arg.startswith(f"--{option}=") for arg in argv)


def _awsglue_resolver() -> Callable[[list[str], list[str]], dict[str, str]] | None:
    try:
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        return None
    resolver: Callable[[list[str], list[str]], dict[str, str]] = getResolvedOptions
    return resolver


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"Glue job arguments: {message}")


def resolved_options(argv: Sequence[str], options: Sequence[str]) -> dict[str, str]:
    """``getResolvedOptions(argv, options)``: the value of each of ``options`` (every one required).

    ``argv`` is the whole command line, the script's name first, as ``sys.argv`` is. Uses awsglue when it
    is installed; otherwise parses the same way.
    """
    resolver = _awsglue_resolver()
    if resolver is not None:
        return {key: value for key, value in resolver(list(argv), list(options)).items() if key in options}
    parser = _Parser(add_help=False, allow_abbrev=False)
    for option in options:
        parser.add_argument(f"--{option}", required=True, dest=option)
    parsed, _ = parser.parse_known_args(list(argv[1:]))
    return {option: getattr(parsed, option) for option in options}


def _overrides(text: str) -> list[str]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"--{SUITE_OVERRIDES}: not a JSON object ({error.msg} at column {error.colno})") from None
    if not isinstance(values, dict):
        raise UsageError(f"--{SUITE_OVERRIDES}: a JSON object of configuration keys is expected, got {text!r}")
    # Each value as JSON, which the YAML reading of ``--set`` gives back unchanged (a text stays a text).
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def suite_arguments(argv: Sequence[str], job_options: Mapping[str, bool]) -> list[str]:
    """The suite's own command line for a job started the Glue way.

    Args:
        argv: ``sys.argv`` as Glue gave it (script name first).
        job_options: the job's own options by name (without ``--``): True for a switch, which Glue passes
            as ``--name true`` or ``--name false``.

    Returns:
        Arguments for the job's usual parser: ``--conf``, one ``--set`` per override, the job's options.
    """
    wanted = [option for option in (JOB_NAME, SUITE_CONF, SUITE_OVERRIDES, *job_options) if _given(argv, option)]
    values = resolved_options(argv, wanted)
    arguments: list[str] = []
    if SUITE_CONF in values:
        arguments += ["--conf", values[SUITE_CONF]]
    if SUITE_OVERRIDES in values:
        for override in _overrides(values[SUITE_OVERRIDES]):
            arguments += ["--set", override]
    for option, switch in job_options.items():
        if option not in values:
            continue
        value = values[option]
        if not switch:
            arguments += [f"--{option}", value]
        elif value.strip().lower() in ("true", "1", "yes"):
            arguments.append(f"--{option}")
        elif value.strip().lower() not in ("false", "0", "no"):
            raise UsageError(f"--{option}: true or false expected, got {value!r}")
    return arguments


def glue_arguments(conf: str | None, overrides: Mapping[str, object], options: Mapping[str, str]) -> dict[str, str]:
    """A Glue job's arguments (``DefaultArguments`` keys) for the suite's configuration and job options.

    Args:
        conf: the configuration file, as the job finds it (``--suite-conf``); None or empty for none.
        overrides: configuration key -> value, applied in order (``--suite-overrides``); empty for none.
        options: the job's own options by name without ``--`` -> value (``{"process-date": "2011-12-10"}``).
    """
    arguments: dict[str, str] = {}
    if conf:
        arguments[f"--{SUITE_CONF}"] = conf
    if overrides:
        arguments[f"--{SUITE_OVERRIDES}"] = json.dumps(dict(overrides))
    for option, value in options.items():
        arguments[f"--{option}"] = value
    return arguments
