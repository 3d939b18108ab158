"""``sam3_propose``: the instances SAM 3 finds for the current query, with their scores.

SAM 3 is prompted with a concept (a short noun phrase) and answers with every instance of it
and a score per instance (detection x presence: "is this an instance" times "is the concept
in the image at all"). The image is encoded once per image (:mod:`tools.sam3.engine` keeps
the encoding) and every later query on it, of this expression or another, runs only the text
encoder and the detector; ``encodes`` counts the encodings, as ``sam_propose`` does.

The candidates of an episode accumulate: a second query's instances join the first's, except
those that are the same instance again (mask IoU >= ``same_instance_iou``), so the ranker can
weigh every instance found so far against the latest query. No instance above ``threshold``
is an answer, not an error: the output is empty and the controllers treat it as "nothing
found" (the loop rewrites the query, ``ground`` asks the VLM, the episode may end
``not_found``).
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.base import Tool, ToolSettings, Workspace, run_on_device
from tools.errors import ToolError
from tools.identity import precision_tag, state_dict_digest
from tools.precision import check_precision
from tools.sam3.declarations import DEFAULT_THRESHOLD, SAM3_PROPOSE, Sam3Options, Sam3ProposeParams
from tools.sam3.loading import Sam3Source, require_transformers
from tools.sam3.overlap import new_instances
from tools.types import Arrays, Image, Meta, Proposals

if TYPE_CHECKING:
    from tools.sam3.engine import Sam3Engine


@dataclass(eq=False)
class Sam3Proposals(Proposals):
    """SAM 3's instances for one query (``scores``: detection x presence).

    Attributes:
        query: the text SAM 3 was prompted with.
        presence: SAM 3's presence score for it (is the concept in the image at all).
        image_encoded: computing this output encoded the image (``False``: it reused the
            encoding an earlier query on the same image made; ``None``: served from a cache,
            nothing computed). A fact of one computation: not in the cache record, and a
            cache hit (memory or disk) reports ``cached``.
    """

    query: str = ""
    presence: float = 0.0
    image_encoded: bool | None = None

    def to_record(self) -> tuple[Arrays, Meta]:
        arrays, meta = super().to_record()
        meta.update(query=self.query, presence=self.presence)  # image_encoded: see the class
        return arrays, meta

    @classmethod
    def from_record(cls, arrays: Arrays, meta: Meta) -> Sam3Proposals:
        out = super().from_record(arrays, meta)
        assert isinstance(out, Sam3Proposals)
        out.query, out.presence = str(meta["query"]), float(meta["presence"])
        return out  # image_encoded None: a hit (records written before kept it: ignored)

    def as_cached(self) -> Sam3Proposals:
        """This output as a later call served from the invoker's memory gets it (cached)."""
        return dataclasses.replace(self, image_encoded=None)

    def summary(self) -> Meta:
        image = {True: "encoded", False: "reused", None: "cached"}[self.image_encoded]
        return {**super().summary(), "query": self.query, "presence": round(self.presence, 4), "image": image}


class Sam3Propose(Tool):
    """Instances of the current query, found by SAM 3 (``transformers``).

    Args:
        settings: weights, device, precision, compile, seed, checkpoint folder; options under
            ``settings.options["sam3_propose"]`` (:class:`Sam3Options`).
        engine: an already built engine to use as is (tests, benchmarks); the fingerprint then
            hashes its weights.

    Attributes:
        encodes: images encoded so far (one per distinct image while it stays kept).
    """

    declaration = SAM3_PROPOSE
    Output = Sam3Proposals

    def __init__(self, settings: ToolSettings | None = None, *, engine: Sam3Engine | None = None):
        super().__init__(settings)
        if engine is None:
            require_transformers()  # the sam3 extra: a one-line ConfigError without it
        self.options = self.read_options(Sam3Options)
        check_precision(self.settings.precision)
        self.source = Sam3Source.of(
            self.settings, self.options.size, self.options.checkpoint, self.options.config
        )
        self._engine = engine
        self._injected = engine is not None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    # -- identity -------------------------------------------------------------------------

    def fingerprint(self) -> str:
        """``random:sam3-<size>-<arch>:seed<n>``, ``sam3-<arch>:sha256:<file hash>`` or
        ``module:<hash>``, followed by ``:bf16`` / ``:fp16`` at those precisions.

        Raises:
            CheckpointError: pretrained weights whose file is missing.
        """
        if self._fingerprint is None:
            if self._injected:
                assert self._engine is not None
                weights = f"module:{state_dict_digest(self._engine.model)}"
            else:
                weights = self.source.fingerprint()
            self._fingerprint = weights + precision_tag(self.settings.precision)
        return self._fingerprint

    def resolve_query(self, ws: Workspace, params: Any) -> str:
        """The text SAM 3 is prompted with: ``params.query`` or the workspace's query."""
        query = " ".join(((params.query if params.query is not None else ws.query) or "").split())
        if not query:
            raise ToolError("the query is empty; give a short noun phrase such as 'red car'")
        return query

    def threshold(self, given: float | None) -> float:
        """A call's threshold, else the tool's (``Sam3Options.threshold``)."""
        return self.options.threshold if given is None else given

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        return {"image": ws.image.digest, "query": self.resolve_query(ws, params)}

    def key_args(self, params: Any) -> dict[str, Any]:
        args = params.model_dump(mode="json")
        args.pop("query", None)  # in key_inputs, resolved (the options, threshold too, are in every key)
        return args

    # -- model ----------------------------------------------------------------------------

    def engine(self) -> Sam3Engine:
        """The engine on the loaded model (built on first use; blocking)."""
        with self._lock:
            if self._engine is None:
                from tools.sam3.engine import Sam3Engine
                from tools.sam3.loading import load_sam3

                s = self.settings
                self._engine = Sam3Engine(
                    load_sam3(self.source, s.device),
                    precision=s.precision,
                    compile=s.compile,
                    compile_backend=s.compile_backend,
                    encodings_kept=self.options.encodings,
                )
            return self._engine

    def setup(self) -> None:
        """Hash the weights file (the fingerprint) and load the model, before any example."""
        self.fingerprint()
        self.engine()

    @property
    def encodes(self) -> int:
        return self._engine.counters.encodes if self._engine is not None else 0

    # -- the tool -------------------------------------------------------------------------

    def propose_sync(self, image: Image, query: str, params: Sam3ProposeParams) -> Sam3Proposals:
        """Blocking version of the tool."""
        engine = self.engine()
        with engine.lock:
            encoded_before = engine.counters.encodes
            found = engine.instances(image, query, self.threshold(params.threshold), params.max_instances)
            encoded = engine.counters.encodes > encoded_before
        out = Sam3Proposals.from_masks(found.masks, scores=found.scores, source=self.name)
        assert isinstance(out, Sam3Proposals)
        out.query, out.presence, out.image_encoded = query, found.presence, encoded
        return out

    async def __call__(self, ws: Workspace, params: Any) -> Sam3Proposals:
        query = self.resolve_query(ws, params)
        return await run_on_device(self.settings.device, self.propose_sync, ws.image, query, params)

    def apply(self, ws: Workspace, output: Any) -> None:
        """The query becomes the current one; the instances join the candidates (see module)."""
        if not isinstance(output, Proposals):
            return
        if isinstance(output, Sam3Proposals) and output.query:
            ws.use_query(output.query)
        held = ws.proposals
        if held is None or len(held) == 0:
            ws.set_proposals(output)
            return
        fresh = new_instances(
            output.masks, output.boxes, held.masks, held.boxes, self.options.same_instance_iou
        )
        if fresh:
            ws.add_proposals(_subset(output, fresh))

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.clear()
            if not self._injected:
                self._engine = None
                self._fingerprint = None


def _subset(props: Proposals, keep: list[int]) -> Proposals:
    idx = np.asarray(keep, dtype=np.int64)
    return Proposals(
        masks=props.masks[idx],
        boxes=props.boxes[idx],
        scores=props.scores[idx],
        stability=props.stability[idx],
        areas=props.areas[idx],
        source=props.source,
        origins=props.origins[idx],
    )


# The parameters and options are declared in tools.sam3.declarations; importable here too.
__all__ = ["DEFAULT_THRESHOLD", "Sam3Options", "Sam3Proposals", "Sam3Propose", "Sam3ProposeParams"]
