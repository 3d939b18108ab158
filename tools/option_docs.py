"""What a settings model (a tool's ``Options``, its ``Params``, a controller's ``Options``)
takes, for people: each key with its type, default, allowed values and description.

Read from the model's JSON Schema, so a plugin's models are described the same way as the
built-ins' (``refseg tools NAME``, ``refseg controllers``, and the one-line error of a bad
``--tool-option``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class FieldDoc:
    """One key of a settings model.

    Attributes:
        key: the field's name (``--tool-option NAME.KEY=VALUE``).
        type: its JSON type as people read it (``integer``, ``string or null``, ``object``).
        default: its default as JSON (``"required"`` when it has none).
        allowed: its allowed values or range (``rules | vlm``, ``>= 1``), or ``""``.
        description: the field's description.
    """

    key: str
    type: str
    default: str
    allowed: str
    description: str


_JSON_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def _type_text(schema: dict[str, Any]) -> str:
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        kinds = sorted({type(v).__name__ for v in values})
        return _JSON_NAMES.get(kinds[0], kinds[0])
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(_type_text(s) for s in schema["anyOf"]))
    if "$ref" in schema:
        return "object"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"list of {_type_text(schema['items'])}"
    return str(kind or "any")


def _allowed_text(schema: dict[str, Any]) -> str:
    parts: list[str] = []
    for option in schema.get("anyOf", [schema]):
        if "enum" in option:
            parts.append(" | ".join(json.dumps(v) if not isinstance(v, str) else v for v in option["enum"]))
        elif "const" in option:
            parts.append(str(option["const"]))
        parts += [f"{sign} {option[key]}" for key, sign in _BOUNDS if key in option]
        if "maxLength" in option:
            parts.append(f"at most {option['maxLength']} characters")
    return ", ".join(parts)


def describe_fields(model: type[BaseModel]) -> list[FieldDoc]:
    """Every field of ``model`` as a :class:`FieldDoc`, in declaration order."""
    properties = model.model_json_schema().get("properties", {})
    docs = []
    for key, info in model.model_fields.items():
        schema = properties.get(info.alias or key, {})
        value = None if info.is_required() else info.get_default(call_default_factory=True)
        if isinstance(value, BaseModel):  # a nested settings model: its fields' defaults
            value = value.model_dump(mode="json")
        default = "required" if info.is_required() else json.dumps(value, default=str)
        docs.append(FieldDoc(key, _type_text(schema), default, _allowed_text(schema), info.description or ""))
    return docs


def field_type(model: type[BaseModel], key: str) -> str | None:
    """The type of field ``key`` of ``model`` as people read it, with its allowed values
    (``None``: no such field)."""
    for doc in describe_fields(model):
        if doc.key == key:
            return f"{doc.type} ({doc.allowed})" if doc.allowed else doc.type
    return None


def options_error(kind: str, name: str, model: type[BaseModel], problems: list[tuple[str, str]]) -> str:
    """The one line of bad options: each ``(key, problem)`` with the type the key takes, and
    where the options are listed, e.g. ``tool refine_query: option refiner: Input should be
    'rules' or 'vlm' (refiner takes string (rules | vlm)); `refseg tools refine_query` lists the
    options``. ``kind``: ``tool`` or ``controller``."""
    parts = []
    for where, what in problems:
        if not where:
            parts.append(f"options: {what}")
            continue
        key = where.split(".")[0]
        takes = field_type(model, key)
        parts.append(f"option {where}: {what}" + (f" ({key} takes {takes})" if takes else ""))
    listed = f"`refseg tools {name}`" if kind == "tool" else "`refseg controllers`"
    return f"{kind} {name}: {'; '.join(parts)}; {listed} lists the options"
