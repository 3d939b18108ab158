"""The tool protocol: what every tool (built-in or plugin) provides.

A tool is a small object with a ``name``, a ``description``, a pydantic ``Params`` model
(its JSON schema is what a VLM sees; it is never written by hand), an ``Output`` type that
round-trips through the cache, a ``version`` (bump it when outputs change), a ``role``
(``propose``, ``rank``, ``refine``, ``prompt`` or ``other``) and
``async __call__(workspace, params)``. A proposer that can draw a mask from a box or points
names its prompt tool in ``prompt_tool``; a tool that works on another tool's state (the
SAM prompt tool reuses ``sam_propose``'s image embeddings) lists it in ``needs`` and gets the
instances through :meth:`Tool.use_tools`.

A tool with settings declares them as an ``Options`` pydantic model (defaults in it) and reads
them with :meth:`Tool.read_options`; they come from ``ToolSettings.options[name]`` (the CLI's
``--tool-option NAME.KEY=VALUE``), and a bad value is a one-line ``ConfigError``. The invoker
puts them into every cache key: ``key_inputs``/``key_args``/``fingerprint`` never mention them.

The :class:`Workspace` is changed only through its methods (``Tool.apply`` and the
controllers use them). Tools get parameters the invoker already validated.
Recoverable problems raise :class:`tools.errors.ToolError`; its message is shown to the VLM.
Blocking work (torch, heavy numpy) runs off the event loop via :func:`run_on_device`
(:mod:`tools.device`, re-exported here).
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel

from tools.coords import Frame, View
from tools.declaration import DECLARED, Role, ToolDeclaration, function_schema
from tools.device import SharedWork, device_thread, run_on_device, waiting
from tools.errors import ToolError
from tools.params import OptionsT, StrictParams, parse_tool_options, validation_problems
from tools.precision import Precision
from tools.types import Image, Proposals, Ranking, Refinement, ToolOutput

WeightsMode = Literal["pretrained", "random"]


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
            time). Speed and memory only; a call that encodes other waiting images books
            their encode in its compute seconds.
        points_per_batch: SAM point prompts per mask-decoder batch (``None``: 256 on CUDA,
            64 on CPU); a call's own ``points_per_batch`` wins. Speed and memory only.
        vlm: the VLM client, when one is configured.
        options: per-tool options by tool name; a tool reads its own, validated against
            its ``Options`` model, with :meth:`Tool.read_options`.
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
    points_per_batch: int | None = None
    vlm: ChatClient | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Workspace:
    """What tools see of an episode: the image, the expression and what is known so far.

    ``image`` is the working copy (downscaled when huge); ``original_size`` is ``(H, W)``
    of the input, which final masks are mapped back to. Read the fields freely; change
    them only through the methods below, which keep them consistent (a ranking always
    indexes the current proposals, ``history`` lists every query in use, ``best_ranking``
    is the most confident ranking of the current proposals). ``view`` is the picture a VLM
    was shown, when a controller showed one: prompt tools read coordinates in it.
    """

    image: Image
    expression: str
    query: str = ""
    original_size: tuple[int, int] = (0, 0)
    proposals: Proposals | None = None
    ranking: Ranking | None = None
    best_ranking: Ranking | None = None
    history: list[str] = field(default_factory=list)
    view: View | None = None

    def __post_init__(self) -> None:
        if not self.query:
            self.query = self.expression
        if not self.history:
            self.history = [self.query]
        if self.original_size == (0, 0):
            self.original_size = self.image.size

    def require_proposals(self) -> Proposals:
        if self.proposals is None:
            raise ToolError("no proposals yet: call the propose tool first")
        if len(self.proposals) == 0:
            raise ToolError("the proposer found no candidate masks in this image")
        return self.proposals

    def set_proposals(self, proposals: Proposals) -> bool:
        """Make ``proposals`` the candidates; returns whether they are new ones.

        New candidates (another digest) drop the rankings: their indices pointed into
        the old candidates.
        """
        changed = self.proposals is not None and self.proposals.digest != proposals.digest
        if changed:
            self.clear_rankings()
        self.proposals = proposals
        return changed

    def add_proposals(self, extra: Proposals) -> bool:
        """Append ``extra`` to the candidates (masks already among them are not added twice);
        returns whether any was new.

        New candidates drop the rankings: their probabilities were spread over the old
        candidates only, so neither the current nor the best ranking describes the new set.
        """
        current = self.require_proposals()
        merged = current.append(extra)
        if merged is current:
            return False
        self.clear_rankings()
        self.proposals = merged
        return True

    @property
    def working_frame(self) -> Frame:
        """The frame of ``image`` (masks and proposal boxes are in its pixels)."""
        return Frame.from_hw(self.image.size, "working")

    @property
    def original_frame(self) -> Frame:
        """The frame of the input image (final masks are mapped back to it)."""
        return Frame.from_hw(self.original_size, "original")

    def shown_view(self) -> View:
        """The picture the VLM was shown, or the working image in pixels when none was shown."""
        return self.view if self.view is not None else View(self.working_frame)

    def set_view(self, view: View) -> None:
        """Record the picture a controller shows the VLM (prompt coordinates refer to it)."""
        self.view = view

    def set_ranking(self, ranking: Ranking) -> None:
        """Make ``ranking`` the current one; it is the best too when it is the most confident."""
        self.ranking = ranking
        if self.best_ranking is None or ranking.conf > self.best_ranking.conf:
            self.best_ranking = ranking

    def submit(self, ranking: Ranking) -> None:
        """A final choice: ``ranking`` becomes both the current and the best ranking."""
        self.ranking = self.best_ranking = ranking

    def clear_rankings(self) -> None:
        self.ranking = self.best_ranking = None

    def tried(self, query: str) -> bool:
        """Whether ``query`` is already in ``history``, compared by :func:`normalise_query`."""
        key = normalise_query(query)
        return any(normalise_query(q) == key for q in self.history)

    def set_query(self, query: str) -> bool:
        """Use a rewritten ``query`` from now on (recorded in ``history``); returns whether it
        is new.

        An empty query, or one already tried (``history``, compared by
        :func:`normalise_query`: case, whitespace and punctuation do not make a query new),
        changes nothing: ranking it again would only repeat an earlier ranking.
        """
        text = query.strip()
        if not text or self.tried(text):
            return False
        self.query = text
        self.history.append(text)
        return True

    def use_query(self, query: str) -> None:
        """Make ``query`` current because a ranking used it (the agent may rank an earlier
        query again); it is recorded in ``history`` only when new."""
        text = query.strip()
        if text and not self.set_query(text):
            self.query = text


def normalise_query(query: str) -> str:
    """The query as compared for repeats: lower case, punctuation dropped, spaces collapsed."""
    return " ".join(_PUNCTUATION.sub(" ", query.casefold()).split())


_PUNCTUATION = re.compile(r"[^\w\s]|_")


class Tool(ABC):
    """Base class of every tool. Subclasses set ``declaration`` (or the class attributes it
    holds: :data:`tools.declaration.DECLARED`) and ``__call__``."""

    declaration: ClassVar[ToolDeclaration | None] = None
    name: ClassVar[str]
    description: ClassVar[str]
    version: ClassVar[str] = "1"
    role: ClassVar[Role] = "other"
    Params: ClassVar[type[BaseModel]] = StrictParams
    Output: ClassVar[type[Any]]
    cacheable: ClassVar[bool] = True
    prompt_tool: ClassVar[str | None] = None  # a proposer's prompt tool (box/points -> mask), offered with it
    text_conditioned: ClassVar[bool] = False  # a proposer finding candidates per query (SAM 3); see loop
    # Tools whose instances this one uses (handed over by the registry, see use_tools).
    needs: ClassVar[tuple[str, ...]] = ()
    # The tool's settings (a StrictParams model, defaults in it), read from
    # ``ToolSettings.options[name]`` (the CLI's ``--tool-option NAME.KEY=VALUE``).
    Options: ClassVar[type[BaseModel] | None] = None
    # ToolSettings fields it reads (None: any); a run records only those of its tools.
    reads_settings: ClassVar[frozenset[str] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = cls.__dict__.get("declaration")
        if isinstance(declared, ToolDeclaration):  # each fact is written once, in the declaration
            for attr in DECLARED:
                setattr(cls, attr, getattr(declared, attr))

    def __init__(self, settings: ToolSettings | None = None):
        self.settings = settings or ToolSettings()

    @classmethod
    def check_options(cls, settings: ToolSettings) -> None:
        """Validate this tool's options without building it.

        Raises:
            ConfigError: a bad value or unknown key (see :func:`parse_tool_options`).
        """
        ToolDeclaration.of_tool(cls).check_options(settings.options)

    def read_options(self, model: type[OptionsT]) -> OptionsT:
        """This tool's validated options; ``model`` is its ``Options`` class.

        Raises:
            ConfigError: a bad value or unknown key (see :func:`parse_tool_options`).
        """
        return parse_tool_options(self.name, model, self.settings.options.get(self.name))

    def validated_options(self) -> BaseModel | None:
        """This tool's options, every field (``None``: it has no ``Options``): the invoker puts
        them into each of its cache keys. Raises ``ConfigError`` like :meth:`read_options`."""
        return None if self.Options is None else self.read_options(self.Options)

    def use_tools(self, tools: dict[str, Tool]) -> None:  # noqa: B027 - optional hook
        """Receive the instances named in ``needs`` (the registry calls this once, after
        building the tool)."""

    def fingerprint(self) -> str:
        """Identity of the weights behind this tool (part of every cache key): a property of
        the model (its checkpoint's digest, architecture, precision), not of the options."""
        return "none"

    def setup(self) -> None:  # noqa: B027 - optional hook, most tools load nothing
        """Load models now (blocking; called once per run before the first example, so that
        a run's one-time start-up is not charged to its first episode). Tools that load
        lazily override it."""

    @property
    def uses_vlm(self) -> bool:
        """Whether a call asks the VLM (a run counts the examples that needed it)."""
        return False

    def key_inputs(self, ws: Workspace, params: BaseModel) -> dict[str, str]:
        """Digests of the workspace inputs the output depends on (default: the image)."""
        return {"image": ws.image.digest}

    def key_args(self, params: BaseModel) -> dict[str, Any]:
        """The arguments that change the output (default: all of them)."""
        return params.model_dump(mode="json")

    def apply(self, ws: Workspace, output: Any) -> None:
        """Record the output in the workspace (proposals, ranking, query) after a call."""
        if isinstance(output, Proposals):
            ws.set_proposals(output)
        elif isinstance(output, Ranking):
            ws.set_ranking(output)
        elif isinstance(output, Refinement):
            ws.set_query(output.query)

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
        return function_schema(cls.name, cls.description, cls.Params)

    def close(self) -> None:  # noqa: B027 - optional hook, most tools hold nothing
        """Release models; tools without state need nothing."""


ToolFactory = Callable[[ToolSettings], Tool]

# Re-exported: tools import run_on_device from here (it lives in tools.device).
__all__ = [
    "ChatClient",
    "Role",
    "SharedWork",
    "StrictParams",
    "Tool",
    "ToolFactory",
    "ToolSettings",
    "Workspace",
    "default_checkpoint_dir",
    "device_thread",
    "normalise_query",
    "parse_tool_options",
    "run_on_device",
    "validation_problems",
    "waiting",
]
