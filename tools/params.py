"""Tool parameter and option models: strict pydantic models, and one-line errors for bad values."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from tools.errors import ConfigError

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class StrictParams(BaseModel):
    """Base of tool parameter (and options) models: unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """``(where, what)`` for each problem pydantic found; ``where`` is the dotted key, ``""``
    when the value as a whole is wrong."""
    return [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]


def parse_tool_options(tool: str, model: type[OptionsT], raw: Any, *, kind: str = "tool") -> OptionsT:
    """``raw`` (``ToolSettings.options[tool]``, or None) validated against ``model``; ``kind``
    is what ``tool`` names in the error (``tool``, or ``controller`` for a controller's).

    Raises:
        ConfigError: one line naming the tool, each bad key with the type it takes, and where
            the options are listed (:func:`tools.option_docs.options_error`).
    """
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        from tools.option_docs import options_error

        raise ConfigError(options_error(kind, tool, model, validation_problems(exc))) from None
