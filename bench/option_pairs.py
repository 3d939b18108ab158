"""``NAME.KEY=VALUE`` settings: ``--tool-option`` and ``--controller-option``, as mappings.

The CLI collects the repeated flags with these functions into ``{name: {key: value}}``
(:attr:`bench.options.ModelOptions.tool_options`,
:attr:`agent.episode.EpisodeConfig.controller_options`); the tools and controllers validate
them against their ``Options`` models. The help lines of ``--controller`` and of the
shortcut flags (``--max-turns``...) are derived from the controllers' specs here too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.controllers import available_controllers, controller_names, get_controller
from tools.errors import ConfigError
from tools.safe_json import option_value


def parse_tool_option(
    text: str, flag: str = "--tool-option", example: str = "refine_query.refiner=vlm"
) -> tuple[str, str, Any]:
    """``NAME.KEY=VALUE`` -> ``(name, key, value)``; the value is JSON when it parses as JSON.

    Args:
        flag, example: what the error names (``--controller-option``, ``agent.max_turns=4``).

    Raises:
        ConfigError: not of that form, or a value too long or too deeply nested (bounded
            before parsing: 3,000 nested brackets would be a RecursionError, not a message).
    """
    target, sep, raw = text.partition("=")
    name, dot, key = target.strip().partition(".")
    if not sep or not dot or not name or not key.strip():
        raise ConfigError(f"{flag} takes NAME.KEY=VALUE (e.g. {example}), got {text!r}")
    return name, key.strip(), option_value(raw, f"{flag} {name}.{key.strip()}")


def tool_options_from(pairs: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Collect repeated ``--tool-option`` values into ``{tool: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for text in pairs:
        name, key, value = parse_tool_option(text)
        out.setdefault(name, {})[key] = value
    return out


def controllers_with_option(key: str) -> list[str]:
    """The controllers whose ``Options`` have field ``key`` (those a shortcut flag sets)."""
    names = []
    for name in controller_names():
        try:
            if key in get_controller(name).Options.model_fields:
                names.append(name)
        except ConfigError:  # a broken plugin has no options to set
            continue
    return names


def controller_options_from(
    pairs: list[str] | tuple[str, ...], shortcuts: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """``{controller: {key: value}}`` from repeated ``--controller-option NAME.KEY=VALUE`` and
    the shortcut flags (``{"max_turns": 4}`` from ``--max-turns 4``), which set their key for
    every controller that has it. Nothing is validated here (see :class:`EpisodeOptions`).

    Raises:
        ConfigError: a pair not of the form ``NAME.KEY=VALUE``, or a shortcut flag and a
            ``--controller-option`` that give one key two values.
    """
    out: dict[str, dict[str, Any]] = {}
    for text in pairs:
        name, key, value = parse_tool_option(text, "--controller-option", "agent.max_turns=4")
        out.setdefault(name, {})[key] = value
    for key, value in (shortcuts or {}).items():
        for name in controllers_with_option(key):
            given = out.setdefault(name, {})
            if key in given and given[key] != value:
                raise ConfigError(
                    f"--controller-option {name}.{key}={given[key]!r} contradicts "
                    f"--{key.replace('_', '-')} {value!r}; give it once"
                )
            given[key] = value
    return out


def check_options_apply(
    controller: str, pairs: list[str] | tuple[str, ...], shortcuts: Mapping[str, str]
) -> None:
    """Refuse controller options the one controller that runs never reads (they would be
    recorded nowhere and change nothing). Commands that run several controllers (the suite)
    pass them to every controller that has them and do not call this.

    Args:
        controller: the controller that runs.
        pairs: the ``--controller-option`` values as given.
        shortcuts: the shortcut flags given, ``{key: flag}`` (``{"max_turns": "--max-turns"}``).

    Raises:
        ConfigError: an option of another controller, or a shortcut this one has no key for.
    """
    for text in pairs:
        name, key, _ = parse_tool_option(text, "--controller-option", "agent.max_turns=4")
        if name != controller:
            raise ConfigError(
                f"--controller-option {name}.{key} is an option of {name}, but the controller that "
                f"runs is {controller}; drop it or pass --controller {name}"
            )
    for key, flag in shortcuts.items():
        owners = controllers_with_option(key)
        if controller not in owners:
            raise ConfigError(
                f"{flag} sets {key} of {' and '.join(owners) or 'no installed controller'}, but the "
                f"controller that runs is {controller}, which has no such option; drop it"
            )


def _shown(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def controllers_help() -> str:
    """Each controller's name and description, from the specs (``--controller``'s help)."""
    specs, broken = available_controllers()
    lines = [f"{spec.name}: {spec.description}" for spec in specs]
    lines += [f"{name}: unavailable ({why})" for name, why in broken.items()]
    return "; ".join(lines)


def option_flag_help(key: str) -> str:
    """A shortcut flag's help: the controllers it sets, the description and their defaults."""
    fields = {name: get_controller(name).option_fields()[key] for name in controllers_with_option(key)}
    if not fields:
        return f"no installed controller has a {key} option"
    description = next(iter(fields.values()))[1]
    defaults = {name: _shown(value) for name, (value, _) in fields.items()}
    if len(set(defaults.values())) == 1:
        shown = f"default {next(iter(defaults.values()))}"
    else:
        shown = "defaults: " + ", ".join(f"{name} {value}" for name, value in defaults.items())
    sets = ", ".join(f"{name}.{key}" for name in fields)
    return f"{', '.join(fields)}: {description} ({shown}; sets --controller-option {sets})"
