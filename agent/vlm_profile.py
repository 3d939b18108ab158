"""How a VLM answers: the one typed place for its conventions (``--vlm-profile`` and overrides).

Real models do not agree. Qwen2.5-VL answers boxes in pixels of the image *after its own
resize onto a 28-pixel grid*; Qwen3-VL and InternVL in 0-1000 normalised ``[x1, y1, x2,
y2]``; Gemini in 0-1000 with y first (``box_2d: [ymin, xmin, ymax, xmax]``); GPT-style models
follow the prompt. Servers differ in tool calling too (vLLM returns ``tool_calls`` only when
started with a tool-call parser; llama.cpp and many gateways return the call as text). A
:class:`VLMProfile` says, for one endpoint:

- ``coords``: the coordinate convention (:data:`tools.coords.UNITS`);
- ``view_grid``, ``min_pixels``, ``max_pixels``: when ``view_grid`` is set, the view is resized
  onto that grid within that pixel budget before sending (:func:`tools.coords.smart_resize`),
  so the frame the model answers in is the frame the project maps from;
- ``tool_calls``: ``native`` (the server's ``tool_calls``), ``text`` (tools described in the
  prompt, calls parsed from the reply's text) or ``auto`` (native when the server returns
  them, text otherwise);
- ``reply_format``: the JSON the ``ground`` prompt asks for: ``box`` (``{"box": [...]}``),
  ``bbox_2d`` (Qwen's ``[{"bbox_2d": [...], "label": ...}]``), ``box_2d`` (Gemini's) or
  ``ref_box`` (InternVL's ``<ref>...</ref><box>[[...]]</box>``); every form is parsed;
- ``json_schema``: ask for schema-shaped replies (``response_format`` with a JSON schema) in
  ``loop`` and ``ground``; a server that refuses it is asked again without, once, and never
  again by that client (the trace says so).

:func:`resolve_profile` takes a preset (:data:`PROFILES`) and the flags given explicitly,
which win; ``config.json`` records the resolved profile under ``vlm.profile``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from tools.coords import MAX_PIXELS, MIN_PIXELS, UNITS, Frame, Units
from tools.errors import ConfigError

ToolCallStyle = Literal["native", "text", "auto"]
TOOL_CALL_STYLES: tuple[ToolCallStyle, ...] = ("native", "text", "auto")
ReplyFormat = Literal["box", "bbox_2d", "box_2d", "ref_box"]
REPLY_FORMATS: tuple[ReplyFormat, ...] = ("box", "bbox_2d", "box_2d", "ref_box")


@dataclass(frozen=True)
class VLMProfile:
    """How one VLM endpoint answers (see the module docstring); defaults are ``generic``."""

    name: str = "generic"
    coords: Units = "pixels"
    view_grid: int | None = None
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    tool_calls: ToolCallStyle = "native"
    reply_format: ReplyFormat = "box"
    json_schema: bool = False

    def __post_init__(self) -> None:
        if self.coords not in UNITS:
            raise ConfigError(f"--vlm-coords must be one of {', '.join(UNITS)}, got {self.coords!r}")
        if self.tool_calls not in TOOL_CALL_STYLES:
            raise ConfigError(
                f"--vlm-tool-calls must be one of {', '.join(TOOL_CALL_STYLES)}, got {self.tool_calls!r}"
            )
        if self.reply_format not in REPLY_FORMATS:
            raise ConfigError(
                f"reply_format must be one of {', '.join(REPLY_FORMATS)}, got {self.reply_format!r}"
            )
        if self.view_grid is not None and self.view_grid < 2:
            raise ConfigError(f"view_grid must be at least 2 pixels, got {self.view_grid}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError(
                f"--vlm-max-pixels must be at least min_pixels ({self.min_pixels}), got {self.max_pixels}"
            )

    def view_frame(self, frame: Frame) -> Frame:
        """The size the view is sent at: ``frame``, or ``frame`` on the grid within the budget
        (a picture the processor itself refuses, under 10 pixels or over 200:1, is sent as it is)."""
        if self.view_grid is None:
            return frame
        try:
            return frame.on_grid(self.view_grid, self.min_pixels, self.max_pixels)
        except ValueError:
            return frame

    def as_dict(self) -> dict[str, Any]:
        """Every field, for ``config.json``."""
        return asdict(self)


PROFILES: dict[str, VLMProfile] = {
    "generic": VLMProfile(),
    # Boxes in pixels of the image its processor resized onto the 28-pixel grid; vLLM returns
    # tool calls with --enable-auto-tool-choice --tool-call-parser hermes.
    "qwen2.5-vl": VLMProfile("qwen2.5-vl", "pixels", view_grid=28, reply_format="bbox_2d"),
    # 0-1000 relative coordinates (the grid no longer matters); same tool-call format.
    "qwen3-vl": VLMProfile("qwen3-vl", "norm1000", reply_format="bbox_2d"),
    # box_2d [ymin, xmin, ymax, xmax] and points [y, x], 0-1000; the OpenAI-compatible API
    # returns native tool calls and honours response_format json_schema.
    "gemini": VLMProfile(
        "gemini", "norm1000-yx", tool_calls="native", reply_format="box_2d", json_schema=True
    ),
    # <ref>..</ref><box>[[x1, y1, x2, y2]]</box> in 0-1000; tool calling depends on the server.
    "internvl": VLMProfile("internvl", "norm1000", tool_calls="auto", reply_format="ref_box"),
    # No native grounding convention: asked for 0-1 fractions, with structured outputs.
    "gpt": VLMProfile("gpt", "norm1", tool_calls="native", reply_format="box", json_schema=True),
}


def resolve_profile(name: str | None = None, **overrides: Any) -> VLMProfile:
    """The preset ``name`` (default ``generic``) with the explicitly given fields replaced.

    Args:
        name: a key of :data:`PROFILES`.
        **overrides: :class:`VLMProfile` fields; ``None`` values are ignored (not given).

    Raises:
        ConfigError: an unknown profile or field, or a bad value.
    """
    preset = PROFILES.get(name or "generic")
    if preset is None:
        raise ConfigError(f"--vlm-profile must be one of {', '.join(PROFILES)}, got {name!r}")
    known = {f.name for f in fields(VLMProfile)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown VLM profile field(s): {', '.join(unknown)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(preset, **given)


def profile_of(client: Any) -> VLMProfile:
    """The profile of a VLM client (its ``config.profile``), or ``generic`` for a client without one."""
    profile = getattr(getattr(client, "config", None), "profile", None)
    return profile if isinstance(profile, VLMProfile) else PROFILES["generic"]


@dataclass(frozen=True)
class ProfileChoice:
    """What the user asked for: a preset (``--vlm-profile``) and the fields given explicitly
    (``--vlm-coords``, ``--vlm-tool-calls``, ``--vlm-json-schema``, ``--vlm-max-pixels``);
    ``None`` takes the preset's value. Checked when built; :meth:`resolve` gives the profile."""

    name: str | None = None
    coords: Units | None = None
    tool_calls: ToolCallStyle | None = None
    json_schema: bool | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        self.resolve()  # an unknown preset or a bad value fails when the options are built

    def resolve(self) -> VLMProfile:
        """The preset with the explicit fields applied."""
        return resolve_profile(
            self.name,
            coords=self.coords,
            tool_calls=self.tool_calls,
            json_schema=self.json_schema,
            max_pixels=self.max_pixels,
        )
