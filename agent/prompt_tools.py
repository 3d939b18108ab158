"""What the ``agent`` and ``ground`` controllers share about prompt tools.

A proposer names its prompt tool (``Tool.prompt_tool``: ``sam_propose`` -> ``sam_prompt``,
``region_propose`` -> ``region_prompt``). Coordinates the VLM gives are in the picture it
was shown (:class:`tools.coords.View`, recorded on the workspace by :func:`show_image`);
every prompt that drew a mask is traced as one ``prompt`` event with its box and points in
both frames: the VLM's view (as given) and the original image.
"""

from __future__ import annotations

import copy
from typing import Any

from agent.agent_prompts import IMAGE_SIDE, view_url
from agent.episode import Episode
from agent.vlm_profile import profile_of
from tools.coords import View
from tools.errors import ConfigError
from tools.registry import ToolRegistry
from tools.types import Proposals


def prompt_tool_name(registry: ToolRegistry, proposer: str) -> str | None:
    """The proposer's prompt tool, when it names one the registry has."""
    try:
        name = registry.declaration(proposer).prompt_tool
    except ConfigError:
        return None
    return name if name is not None and name in registry.names() else None


def require_prompt_tool(registry: ToolRegistry, proposer: str, controller: str) -> str:
    """The proposer's prompt tool.

    Raises:
        ConfigError: the proposer takes no prompts (one line saying which toolsets do).
    """
    name = prompt_tool_name(registry, proposer)
    if name is None:
        raise ConfigError(
            f"--controller {controller} needs a proposer that takes a box or points; {proposer} names "
            "no prompt tool (sam_propose has sam_prompt, region_propose has region_prompt)"
        )
    return name


def show_image(ep: Episode) -> str:
    """The working image as the VLM sees it (a JPEG data URL); records that view on the workspace.

    The view is the working image downscaled to :data:`IMAGE_SIDE`, then, when the VLM's
    profile has a grid (Qwen2.5-VL), resized onto it (:meth:`VLMProfile.view_frame`): the
    picture sent is the frame the model answers in, and its coordinates are read in the
    profile's convention.
    """
    profile = profile_of(ep.registry.settings.vlm)
    frame = profile.view_frame(ep.ws.working_frame.downscaled(IMAGE_SIDE, "view"))
    url = view_url(ep.ws.image, IMAGE_SIDE, frame)
    ep.ws.set_view(View(frame, profile.coords))
    return url


def view_schema(schema: dict[str, Any], view: View) -> dict[str, Any]:
    """A prompt tool's function schema with ``box`` and ``points`` described in the view's
    convention (order and units), as the system prompt describes them."""
    out = copy.deepcopy(schema)
    props = out.get("function", {}).get("parameters", {}).get("properties", {})
    if "box" in props:
        props["box"]["description"] = f"{view.box_form}: the object's bounding box, in {view.describe()}."
    if "points" in props:
        props["points"]["description"] = (
            f"[{view.point_form}, ...]: points on the object (label 1) or on what is not the object "
            "(label 0), in the same coordinates as box."
        )
    return out


def added_indices(ep: Episode, output: Proposals) -> list[int]:
    """Where a prompt tool's masks are among the candidates now (after the append)."""
    props = ep.ws.proposals
    return [props.find(m) for m in output.masks] if props is not None else []


def _rounded(values: Any) -> list[Any]:
    return [round(float(v), 1) for v in values]


def log_prompt(ep: Episode, tool: str, args: dict[str, Any], added: list[int]) -> dict[str, Any]:
    """Trace one drawn prompt: its box and points as given (the VLM's view) and in the
    original image's pixels; returns the event's fields."""
    ws = ep.ws
    view, original = ws.shown_view(), ws.original_frame
    fields: dict[str, Any] = {
        "tool": tool,
        "units": view.units,
        "view_size": list(view.frame.wh),
        "image_size": list(original.wh),
        "added": added,
    }
    if args.get("box") is not None:
        fields["box_view"] = list(args["box"])
        fields["box_image"] = _rounded(view.box_to(args["box"], original))
    if args.get("points"):
        fields["points_view"] = [list(p) for p in args["points"]]
        fields["points_image"] = [_rounded(p) for p in view.points_to(args["points"], original)]
        fields["labels"] = list(args.get("labels") or [1] * len(args["points"]))
    ep.log.info("prompt", step=ep.step, **fields)
    return fields
