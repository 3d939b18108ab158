"""``refine_query``: rewrite the referring expression when the ranking is unsure.

Two backends behind one tool (the agent and the loop see the same interface):

- ``rules`` (default, no network): :func:`tools.refine_rules.refine_with_rules`.
- ``vlm``: :func:`tools.refine_vlm.refine_with_vlm`, using ``ToolSettings.vlm``.

Select with the ``refiner`` option (:class:`RefineOptions`): the CLI's ``--refiner``, or
``--tool-option refine_query.refiner=vlm``.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field

from cache.keys import canonical_json
from tools.base import StrictParams, Tool, ToolSettings, Workspace
from tools.declaration import ToolDeclaration
from tools.errors import ConfigError
from tools.types import Refinement


class RefineOptions(StrictParams):
    """Settings of ``refine_query`` (``ToolSettings.options["refine_query"]``)."""

    refiner: Literal["rules", "vlm"] = Field(
        default="rules", description="rules: no network; vlm: the VLM rewrites the query."
    )


class RefineParams(StrictParams):
    hint: str | None = Field(
        default=None,
        description="Optional guidance for the rewrite, e.g. 'the object is on the left'.",
        max_length=500,
    )
    allow_none: bool = Field(
        default=False,
        description="Allow the answer that nothing in the image matches the original expression "
        "(no_match; the VLM refiner only), for expressions that may refer to nothing.",
    )


REFINE_QUERY = ToolDeclaration(
    name="refine_query",
    role="refine",
    description=(
        "Rewrite the current referring expression into a clearer query for the ranker "
        "(head noun, colour, position), using the image and the current top candidates."
    ),
    implementation="tools.refine:RefineQuery",
    Params=RefineParams,
    Options=RefineOptions,
    version="2",  # 2: never repeats a query (rules: distinct rewrites; VLM: history, one re-ask)
    reads_settings=frozenset(),  # the VLM client and its options only
)


class RefineQuery(Tool):
    declaration = REFINE_QUERY
    Output = Refinement

    def __init__(self, settings: ToolSettings | None = None):
        super().__init__(settings)
        self.refiner = self.read_options(RefineOptions).refiner
        if self.refiner == "vlm" and self.settings.vlm is None:
            raise ConfigError(
                "--refiner vlm needs a VLM: set SILICONFLOW_API_KEY (or REFSEG_VLM_API_KEY) "
                "or pass --vlm-base-url; use --refiner rules to run without one"
            )

    @property
    def uses_vlm(self) -> bool:
        return self.refiner == "vlm"

    def fingerprint(self) -> str:
        """The models behind the tool: the rules' version and, when a VLM is configured, its
        model. Which of them answers is the ``refiner`` option, in every key by the invoker."""
        from tools.refine_rules import RULES_VERSION

        vlm = self.settings.vlm
        return f"rules:{RULES_VERSION}" + (f";vlm:{getattr(vlm, 'model', 'unknown')}" if vlm else "")

    def key_args(self, params: Any) -> dict[str, Any]:
        args: dict[str, Any] = params.model_dump(mode="json")
        if not args.get("allow_none"):  # the question asked before it existed: same key as then
            args.pop("allow_none", None)
        return args

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        # The rewrite depends on the episode's text state and current candidates too.
        state: dict[str, Any] = {"expression": ws.expression, "history": ws.history}
        if ws.ranking is not None:
            state["top"] = [int(i) for i in ws.ranking.order[:3]]
        inputs = {
            "image": ws.image.digest,
            "text": hashlib.sha256(canonical_json(state).encode()).hexdigest(),
        }
        if ws.proposals is not None:
            inputs["proposals"] = ws.proposals.digest
        return inputs

    async def __call__(self, ws: Workspace, params: RefineParams) -> Refinement:
        if self.refiner == "vlm":
            from tools.refine_vlm import refine_with_vlm

            assert self.settings.vlm is not None  # checked in __init__
            return await refine_with_vlm(self.settings.vlm, ws, params.hint, params.allow_none)
        from tools.refine_rules import refine_with_rules

        return refine_with_rules(ws, params.hint)
