"""OpenLineage events read back into the OpenLineage client's own types, as the check of what the suite emits.

The client's classes (``openlineage.client.generated``) are generated from the specification's JSON schemas, with
its validators (an ISO 8601 event time with a time, a UUID run id, URL producers and schema URLs). A facet is
found by its ``_schemaURL`` among the client's facet classes, and must be of the kind its place takes (a run facet
under a run). Every key must be a field of its type, every required field present, every value of its type; then
the client's own serialisation of what was built must give back the event as it was emitted.
"""

from __future__ import annotations

import enum
import importlib
import pkgutil
import types
import typing
from functools import cache
from typing import Any

import attr
from openlineage.client import generated
from openlineage.client.generated.base import BaseFacet, RunEvent
from openlineage.client.serde import Serde


@cache
def facet_classes() -> dict[str, type[BaseFacet]]:
    """Every facet class of the client, by the schema URL it writes."""
    found: dict[str, type[BaseFacet]] = {}
    for module_info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"{generated.__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseFacet) and attr.has(value):
                found[value._get_schema()] = value
    return found


def _fields(cls: type) -> dict[str, Any]:
    attr.resolve_types(cls)
    return {field.name: field for field in attr.fields(cls)}


def _value(kind: Any, value: Any, where: str) -> Any:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            assert type(None) in arguments, f"{where}: null where {kind} is required"
            return None
        [kind] = [argument for argument in arguments if argument is not type(None)]
        return _value(kind, value, where)
    if origin is list:
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        return [_value(arguments[0], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        return {key: _value(arguments[1], item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(kind, type) and issubclass(kind, BaseFacet):
        assert isinstance(value, dict), f"{where}: {value!r} is not a facet"
        facet = facet_classes().get(value.get("_schemaURL", ""))
        assert facet is not None, f"{where}: no facet of the client has the schema {value.get('_schemaURL')!r}"
        assert issubclass(facet, kind), f"{where}: a {facet.__name__} where a {kind.__name__} goes"
        return structure(facet, value, where)
    if isinstance(kind, type) and attr.has(kind):
        return structure(kind, value, where)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    if kind is float:
        assert isinstance(value, int | float), f"{where}: {value!r} is not a number"
        assert not isinstance(value, bool), f"{where}: {value!r} is not a number"
        return value
    if kind is Any:
        return value
    assert isinstance(value, kind), f"{where}: {value!r} is no {kind}"
    assert not (kind is int and isinstance(value, bool)), f"{where}: {value!r} is no {kind}"
    return value


def structure(cls: type, data: dict[str, Any], where: str = "event") -> Any:
    """``data`` as an instance of the client's ``cls``; AssertionError or the client's own error where it is not."""
    assert isinstance(data, dict), f"{where}: {data!r} is not an object"
    fields = _fields(cls)
    unknown = sorted(set(data) - set(fields))
    assert not unknown, f"{where}: {', '.join(unknown)} not a field of {cls.__name__}"
    arguments = {
        field.alias: _value(field.type, data[name], f"{where}.{name}")
        for name, field in fields.items()
        if field.init and name in data
    }
    built = cls(**arguments)
    for name, field in fields.items():
        if not field.init and name in data:
            assert getattr(built, name) == data[name], f"{where}.{name}: {data[name]!r}, not {getattr(built, name)!r}"
    return built


def check_run_event(data: dict[str, Any]) -> RunEvent:
    """The event, built with the client's ``RunEvent`` and its parts, and serialised back the same by the client."""
    event = structure(RunEvent, data)
    assert Serde.to_dict(event) == data, "the client serialises the event it reads otherwise"
    return typing.cast(RunEvent, event)
