"""Help that shows every flag's default: the parser class and formatter of every ``refseg`` command.

Flags have no argparse defaults (the typed option classes hold them), so argparse alone cannot
show them. Here one formatter writes the default of every flag whose help text does not say it
already, from, in this order:

- the option class a flag table is bound to (:func:`bench.cli.args.add_flags` stores the
  field's default on the action as ``shown_default``);
- an argparse default, where a command still has one;
- for switches (``store_true``, ``store_const``, ...): ``(default: off)``;
- for a flag declared ``required=True``: ``(required)``.

A flag whose default is ``None`` (computed at run time: "cuda if available", "the data set's
own split") says what it is in its own help text, with the word "default". Nothing is
invented: a flag with no help, or an optional one whose default cannot be found, is shown as
it is, and ``tests/bench/test_cli_help_defaults.py`` (which walks every parser of every
command and subcommand) fails on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SHOWN_DEFAULT = "shown_default"  # the action attribute add_flags sets (the option field's default)
_SWITCHES = (
    argparse._StoreConstAction,  # also store_true / store_false
    argparse._AppendConstAction,
    argparse._CountAction,
)


def shows_default(text: str) -> bool:
    """The help text already says the default (or that the flag is required)."""
    lowered = text.lower()
    return "default" in lowered or "(required)" in lowered


def shown_value(value: Any) -> str:
    """A default as help texts show it: ``on``/``off``, ``a,b,c``, ``none`` for empty collections."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str)):
        return ",".join(shown_value(v) for v in value) if value else "none"
    return str(value)


def field_default(owner: type, name: str) -> Any:
    """The default of field ``name`` of a dataclass or pydantic model, or ``None`` when it has
    none (or no such field)."""
    if dataclasses.is_dataclass(owner):
        for f in dataclasses.fields(owner):
            if f.name == name:
                if f.default is not dataclasses.MISSING:
                    return f.default
                if f.default_factory is not dataclasses.MISSING:
                    return f.default_factory()
        return None
    fields = getattr(owner, "model_fields", None)
    if isinstance(fields, dict) and name in fields:
        return fields[name].get_default(call_default_factory=True)
    return None


def help_with_default(action: argparse.Action) -> str:
    """``action``'s help text with its default appended when the text does not show it."""
    text = action.help or ""
    if not text or text == argparse.SUPPRESS or shows_default(text):
        return text
    if not action.option_strings:
        return text  # a positional: required ones have no default; optional ones say theirs
    if action.required:
        return f"{text} (required)"
    if isinstance(action, _SWITCHES):
        return f"{text} (default: off)"  # a switch is off unless given (--no-cache too)
    value = getattr(action, SHOWN_DEFAULT, None)
    if value is None and action.default not in (None, argparse.SUPPRESS):
        value = action.default
    if value is None:
        return text  # unknown: the help text must say it (the help test fails otherwise)
    return f"{text} (default: {shown_value(value).replace('%', '%%')})"


def show_default(action: argparse.Action, owner: type, name: str) -> argparse.Action:
    """Let ``action``'s help show the default of field ``name`` of ``owner`` (for a flag declared
    with ``add_argument`` outside a flag table); returns the action."""
    setattr(action, SHOWN_DEFAULT, field_default(owner, name))
    return action


class ShowDefaults(argparse.HelpFormatter):
    """A formatter mixin: every flag's help shows its default (see :func:`help_with_default`)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return help_with_default(action)


class DefaultsFormatter(ShowDefaults, argparse.HelpFormatter):
    """The formatter of every ``refseg`` parser."""


class RefsegParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help shows defaults; its subparsers are of this class too.

    A command that asks for another formatter (``RawDescriptionHelpFormatter`` for an epilog of
    examples) gets that formatter with the defaults mixed in.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        given = kwargs.get("formatter_class")
        if given is None:
            kwargs["formatter_class"] = DefaultsFormatter
        elif not issubclass(given, ShowDefaults):
            kwargs["formatter_class"] = type(f"Defaults{given.__name__}", (ShowDefaults, given), {})
        super().__init__(*args, **kwargs)


class VersionAction(argparse.Action):
    """``--version``: the installed distribution's version (read only when asked)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any):
        kwargs.setdefault("help", "print refseg's version and exit")
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        print(version_line())
        parser.exit()


def version_line() -> str:
    """``refseg 0.1.0 (refseg-loop, Python 3.11.9)``; ``unknown`` when not installed."""
    import importlib.metadata
    import platform

    try:
        version = importlib.metadata.version("refseg-loop")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed: pip install -e .)"
    return f"refseg {version} (refseg-loop, Python {platform.python_version()})"
