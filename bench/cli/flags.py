"""Flag tables: each flag declared once, with the option field it sets and the class that
holds that field's default.

Flags have no argparse default: :func:`given` keeps only what the user typed, and the option
classes supply every default. :func:`add_flags` hands each field's default to the help
formatter (:mod:`bench.cli.help`), which shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.cli.help import SHOWN_DEFAULT, field_default


def default(cls: type, name: str) -> Any:
    """The default of dataclass field ``name`` of ``cls`` (for help texts)."""
    if not any(f.name == name for f in dataclasses.fields(cls)):
        raise KeyError(f"{cls.__name__} has no field {name!r}")
    return field_default(cls, name)


@dataclass(frozen=True)
class Flag:
    """One command-line flag: ``--flag`` sets option field ``field`` of ``owner`` (the class
    whose default its help shows; ``None``: the help text says the default itself)."""

    flag: str
    field: str
    kwargs: dict[str, Any]
    owner: type | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def flags(*rows: tuple[str, str, dict[str, Any]], owner: type | None = None) -> tuple[Flag, ...]:
    """A table of flags setting fields of ``owner`` (whose defaults their help shows)."""
    return tuple(Flag(flag, name, kwargs, owner) for flag, name, kwargs in rows)


def add_flags(
    parser: argparse.ArgumentParser, title: str, table: tuple[Flag, ...], owner: type | None = None
) -> None:
    """Declare ``table`` in an argument group; none has an argparse default (see module
    docstring): the help shows the default of each flag's field of ``owner`` (else of the
    table's own ``owner``)."""
    group = parser.add_argument_group(title)
    for flag in table:
        kwargs = dict(flag.kwargs)
        if kwargs.get("action") in ("store_true", "store_false"):
            # Unset stays None, so the dataclass default applies.
            kwargs["const"] = kwargs.pop("action") == "store_true"
            kwargs["action"] = "store_const"
        action = group.add_argument(flag.flag, dest=flag.dest, default=None, **kwargs)
        holder = owner or flag.owner
        if holder is not None:
            setattr(action, SHOWN_DEFAULT, field_default(holder, flag.field))


def given(ns: argparse.Namespace, table: tuple[Flag, ...]) -> dict[str, Any]:
    """The option fields the user set on the command line, by field name."""
    values = {f.field: getattr(ns, f.dest, None) for f in table}
    return {name: value for name, value in values.items() if value is not None}
