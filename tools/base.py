"""The tool protocol: what every tool (built-in or plugin) provides.

A tool is a small object with a ``name``, a ``description``, a pydantic ``Params`` model
(its JSON schema is what a VLM sees; it is never written by hand), an ``Output`` type that
round-trips through the cache, a ``version`` (bump it when outputs change), a ``role``
(``propose``, ``rank``, ``refine`` or ``other``) and ``async __call__(workspace, params)``.

Recoverable problems raise :class:`tools.errors.ToolError`; its message is shown to the VLM.
Torch work runs off the event loop via :func:`run_on_device`.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import anyio
import anyio.to_thread
from pydantic import BaseModel, ConfigDict

from tools.precision import Precision
from tools.types import Image, Proposals, Ranking, Refinement, ToolOutput

Role = Literal["propose", "rank", "refine", "other"]
WeightsMode = Literal["pretrained", "random"]
T = TypeVar("T")


class ChatClient(Protocol):
    """What a VLM-backed tool needs from the VLM client (implemented in ``agent.vlm``)."""

    async def complete(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any: ...


def default_checkpoint_dir() -> Path:
    """``$REFSEG_CHECKPOINT_DIR``, else ``./checkpoints``."""
    return Path(os.environ.get("REFSEG_CHECKPOINT_DIR", "checkpoints"))


@dataclass(frozen=True)
class ToolSettings:
    """How tools are built: weights, devices, model names. Shared by all tools of a run.

    Attributes:
        weights: ``pretrained`` loads checkpoint files; ``random`` builds the same
            architectures with seeded random weights (smoke runs and timing only).
        device: torch device string.
        checkpoint_dir: where weight files live.
        sam_model_type: segment-anything registry key (``vit_b``, ``vit_l``, ``vit_h``).
        sam_checkpoint: explicit SAM checkpoint path (overrides the registry file name).
        clip_model: open_clip model name.
        clip_pretrained: open_clip pretrained tag, or a path to a local checkpoint file.
        seed: seed of random weights.
        max_side: longest image side the models see (bigger images are downscaled).
        precision: ``fp32``, ``bf16`` or ``fp16``: model forwards of SAM and CLIP run
            under ``torch.autocast`` at that precision (masks are still thresholded and
            scores computed in float32). It changes outputs, so it is part of the tools'
            cache fingerprints.
        compile: wrap the SAM encoder and decoder and the CLIP towers in
            ``torch.compile`` (slow first calls; same math, so not part of cache keys).
        compile_backend: the ``torch.compile`` backend (``inductor``; ``aot_eager``
            captures the graphs without generating code, which tests use).
        encoder_batch: most images SAM's image encoder takes in one forward: calls
            waiting for the device with other images are encoded together (1: one at a
            time). Speed and memory only.
        vlm: the VLM client, when one is configured.
        options: per-tool extra options by tool name (plugins read theirs from here).
    """

    weights: WeightsMode = "pretrained"
    device: str = "cpu"
    checkpoint_dir: Path = field(default_factory=default_checkpoint_dir)
    sam_model_type: str = "vit_b"
    sam_checkpoint: Path | None = None
    clip_model: str = "ViT-B-16"
    clip_pretrained: str = "openai"
    seed: int = 0
    max_side: int = 2048
    precision: Precision = "fp32"
    compile: bool = False
    compile_backend: str = "inductor"
    encoder_batch: int = 1
    vlm: ChatClient | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Workspace:
    """What tools see of an episode: the image, the expression and what is known so far.

    ``image`` is the working copy (downscaled when huge); ``original_size`` is ``(H, W)``
    of the input, which final masks are mapped back to.
    """

    image: Image
    expression: str
    query: str = ""
    original_size: tuple[int, int] = (0, 0)
    proposals: Proposals | None = None
    ranking: Ranking | None = None
    best_ranking: Ranking | None = None
    history: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.query:
            self.query = self.expression
        if not self.history:
            self.history = [self.query]
        if self.original_size == (0, 0):
            self.original_size = self.image.size

    def require_proposals(self) -> Proposals:
        from tools.errors import ToolError

        if self.proposals is None:
            raise ToolError("no proposals yet: call the propose tool first")
        if len(self.proposals) == 0:
            raise ToolError("the proposer found no candidate masks in this image")
        return self.proposals


class StrictParams(BaseModel):
    """Base of tool parameter models: unknown arguments are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Tool(ABC):
    """Base class of every tool. Subclasses set the class attributes and ``__call__``."""

    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[str] = "1"
    role: ClassVar[Role] = "other"
    Params: ClassVar[type[BaseModel]] = StrictParams
    Output: ClassVar[type[Any]]
    cacheable: ClassVar[bool] = True

    def __init__(self, settings: ToolSettings | None = None):
        self.settings = settings or ToolSettings()

    def fingerprint(self) -> str:
        """Identity of the weights behind this tool (part of every cache key)."""
        return "none"

    def key_inputs(self, ws: Workspace, params: BaseModel) -> dict[str, str]:
        """Digests of the workspace inputs the output depends on (default: the image)."""
        return {"image": ws.image.digest}

    def key_args(self, params: BaseModel) -> dict[str, Any]:
        """The arguments that change the output (default: all of them)."""
        return params.model_dump(mode="json")

    def apply(self, ws: Workspace, output: Any) -> None:
        """Record the output in the workspace (proposals, ranking, query) after a call."""
        if isinstance(output, Proposals):
            ws.proposals = output
        elif isinstance(output, Ranking):
            ws.ranking = output
            if ws.best_ranking is None or output.conf > ws.best_ranking.conf:
                ws.best_ranking = output
        elif isinstance(output, Refinement) and output.query.strip() not in ("", ws.query):
            ws.query = output.query.strip()
            ws.history.append(ws.query)

    @abstractmethod
    async def __call__(self, ws: Workspace, params: Any) -> ToolOutput:
        """Run the tool. Raise ``ToolError`` for problems the caller can fix."""

    @classmethod
    def parameters_schema(cls) -> dict[str, Any]:
        """JSON schema of ``Params`` (generated by pydantic)."""
        schema = cls.Params.model_json_schema()
        schema.pop("title", None)
        return schema

    @classmethod
    def function_schema(cls) -> dict[str, Any]:
        """The OpenAI function-calling description of this tool."""
        return {
            "type": "function",
            "function": {
                "name": cls.name,
                "description": cls.description,
                "parameters": cls.parameters_schema(),
            },
        }

    def close(self) -> None:  # noqa: B027 - optional hook, most tools hold nothing
        """Release models; tools without state need nothing."""


# Keyed weakly by the loop object (as agent.vlm keys its SDK clients): an id() can be
# reused by a later loop, and a bench suite runs loop after loop in one process.
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)
_no_loop_limiters: dict[str, anyio.CapacityLimiter] = {}


def device_limiter(device: str) -> anyio.CapacityLimiter:
    """One worker thread per torch device per event loop: models are not re-entrant and
    two big forwards on 2 CPU cores only slow each other down."""
    try:
        per_loop = _limiters.setdefault(asyncio.get_running_loop(), {})
    except RuntimeError:
        per_loop = _no_loop_limiters
    key = device.split(":")[0] if device.startswith("cpu") else device
    if key not in per_loop:
        per_loop[key] = anyio.CapacityLimiter(1)
    return per_loop[key]


async def run_on_device(device: str, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking model code in a worker thread under the device's limiter."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=device_limiter(device))


ToolFactory = Callable[[ToolSettings], Tool]
