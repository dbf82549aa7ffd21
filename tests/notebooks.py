"""What a Databricks notebook is given besides `spark`, for running the suite's notebooks locally."""

from __future__ import annotations


class Widgets:
    """The part of Databricks' `dbutils.widgets` the notebooks use, holding values a job run would pass."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.declared: list[str] = []

    def text(self, name: str, default: str, label: str) -> None:
        self.declared.append(name)
        self.values.setdefault(name, default)

    def get(self, name: str) -> str:
        return self.values[name]


class DbUtils:
    """`dbutils`, as far as the notebooks use it."""

    def __init__(self, values: dict[str, str]) -> None:
        self.widgets = Widgets(values)
