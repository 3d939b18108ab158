"""``clip_rank``: rank the proposals against the query with open_clip.

All candidates of an image go through the vision tower in one batched forward (chunked
only for very many candidates). Image-side embeddings are cached in memory per
(image digest, proposals digest, visual prompt mode), so re-ranking after a query
rewrite costs one text forward; text embeddings are cached per (query, template).
Score = cosine similarity; probabilities = ``softmax(score / temperature)``.

Ranking costs what the compute floor costs: the visual prompts are made at the model's
input size (:func:`tools.visual_prompts.prompt_batch`), then one batched image forward
and one text forward (``refseg bench speed --rank-floor`` measures it). With
``ToolSettings.precision`` the towers run under autocast; ``ToolSettings.compile`` compiles
them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cache.lru import LRU
from tools.accel import autocast, compiled
from tools.base import Tool, ToolSettings, Workspace, run_on_device
from tools.clip_declaration import CLIP_RANK, ClipRankOptions, PromptMode
from tools.clip_loading import ClipBundle, clip_fingerprint, load_clip
from tools.errors import ToolError
from tools.identity import precision_tag, state_dict_digest
from tools.precision import check_precision
from tools.types import Image, Proposals, Ranking
from tools.visual_prompts import PromptStyle, prompt_batch

# Candidates per vision forward. Up to this many, ranking is exactly the compute floor (one
# batched forward); beyond it, chunks bound peak memory (activations grow with the batch).
IMAGE_CHUNK = 256
IMAGE_CACHE_SIZE = 32
TEXT_CACHE_SIZE = 1024


def apply_template(template: str, query: str) -> str:
    """Put the query in the template, unless the query already starts like the template
    (a refiner may write "a photo of a red car" itself)."""
    prefix = template.split("{}")[0].strip().lower()
    if prefix and query.lower().startswith(prefix):
        return query
    return template.replace("{}", query)


class ClipRank(Tool):
    """Rank proposals with open_clip (``ToolSettings.clip_model`` / ``clip_pretrained``).

    Args:
        settings: weights, model, device, precision, compile; options under
            ``settings.options["clip_rank"]``: ``style`` (:class:`PromptStyle` fields) and
            ``cache_dir`` (download cache).
        bundle: an already loaded model to use as is (benchmarks, notebooks); the
            fingerprint then hashes its weights.

    Attributes:
        image_forwards: batched vision-tower forwards run so far.
        text_forwards: text-tower forwards run so far.
        crops_encoded: visual prompts encoded so far.
    """

    declaration = CLIP_RANK
    Output = Ranking

    def __init__(self, settings: ToolSettings | None = None, *, bundle: ClipBundle | None = None):
        super().__init__(settings)
        check_precision(self.settings.precision)
        opts = self.read_options(ClipRankOptions)
        self.style = PromptStyle(**opts.style.model_dump())
        self.cache_dir = opts.cache_dir
        self.image_forwards = 0
        self.text_forwards = 0
        self.crops_encoded = 0
        self._bundle = bundle
        self._injected = bundle is not None
        self._towers: tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]] | None = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()  # model build and caches; forwards are already serialised
        self._image_cache: LRU[tuple[str, str, str], torch.Tensor] = LRU(IMAGE_CACHE_SIZE)
        self._text_cache: LRU[str, torch.Tensor] = LRU(TEXT_CACHE_SIZE)

    # -- identity and cache keys -------------------------------------------------------

    def fingerprint(self) -> str:
        """The weights' identity (see :func:`clip_fingerprint`, ``module:<hash>`` for an
        injected model), followed by ``:bf16`` / ``:fp16`` at those precisions."""
        if self._fingerprint is None:
            s = self.settings
            if self._bundle is not None and self._injected:
                weights = f"module:{state_dict_digest(self._bundle.model)}"
            else:
                weights = clip_fingerprint(s.clip_model, s.clip_pretrained, s.weights, s.seed)
            self._fingerprint = weights + precision_tag(s.precision)
        return self._fingerprint

    def resolve_query(self, ws: Workspace, params: Any) -> str:
        """The text actually ranked against: ``params.query`` or the workspace's query."""
        query = (params.query if params.query is not None else ws.query) or ""
        query = " ".join(query.split())
        if not query:
            raise ToolError("the query is empty; pass a short description of the object")
        return query

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        # The query used (explicit or the workspace's) is an input; so are the proposals.
        inputs = {"image": ws.image.digest, "query": self.resolve_query(ws, params)}
        if ws.proposals is not None:
            inputs["proposals"] = ws.proposals.digest
        return inputs

    def key_args(self, params: Any) -> dict[str, Any]:
        args = params.model_dump(mode="json")
        args.pop("query", None)  # covered by key_inputs, resolved
        return args  # the options (style, ...) are in every key by the invoker

    # -- model -------------------------------------------------------------------------

    def bundle(self) -> ClipBundle:
        """The loaded model (built on first use; blocking)."""
        with self._lock:
            if self._bundle is None:
                s = self.settings
                self._bundle = load_clip(
                    s.clip_model,
                    s.clip_pretrained,
                    weights=s.weights,
                    seed=s.seed,
                    device=s.device,
                    cache_dir=self.cache_dir,
                )
            return self._bundle

    def setup(self) -> None:
        """Fingerprint and load the model before any example."""
        self.fingerprint()
        self.bundle()

    def towers(self) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        """``encode_image`` and ``encode_text`` of the model, through ``torch.compile`` when asked."""
        b = self.bundle()
        with self._lock:
            if self._towers is None:
                s = self.settings
                self._towers = (
                    compiled(b.model.encode_image, s.compile, s.compile_backend),
                    compiled(b.model.encode_text, s.compile, s.compile_backend),
                )
            return self._towers

    def close(self) -> None:
        with self._lock:
            if not self._injected:
                self._bundle = None
            self._towers = None
            self._image_cache.clear()
            self._text_cache.clear()

    # -- embeddings (blocking; run on the device thread) --------------------------------

    def image_embeddings(self, image: Image, proposals: Proposals, mode: PromptMode) -> torch.Tensor:
        """``(N, D)`` unit-norm embeddings of the proposals' visual prompts (cached)."""
        key = (image.digest, proposals.digest, mode)
        with self._lock:
            hit = self._image_cache.get(key)
        if hit is not None:
            return hit
        b = self.bundle()
        encode_image = self.towers()[0]
        device = next(b.model.parameters()).device
        n = len(proposals)
        parts = []
        with torch.inference_mode():
            for start in range(0, n, IMAGE_CHUNK):
                sl = slice(start, min(n, start + IMAGE_CHUNK))
                batch = prompt_batch(
                    image.pixels,
                    proposals.masks[sl],
                    proposals.boxes[sl],
                    mode,
                    size=b.image_size,
                    mean=b.mean,
                    std=b.std,
                    style=self.style,
                    device=device,
                )
                with autocast(device, self.settings.precision):
                    parts.append(encode_image(batch, normalize=True).float())
                self.image_forwards += 1
                self.crops_encoded += batch.shape[0]
        emb = torch.cat(parts)
        with self._lock:
            self._image_cache.put(key, emb)
        return emb

    def text_embedding(self, text: str) -> torch.Tensor:
        """``(D,)`` unit-norm embedding of ``text`` (cached)."""
        with self._lock:
            hit = self._text_cache.get(text)
        if hit is not None:
            return hit
        b = self.bundle()
        encode_text = self.towers()[1]
        device = next(b.model.parameters()).device
        with torch.inference_mode():
            tokens = b.tokenizer([text]).to(device)
            with autocast(device, self.settings.precision):
                emb = encode_text(tokens, normalize=True).float()[0]
        self.text_forwards += 1
        with self._lock:
            self._text_cache.put(text, emb)
        return emb

    def scores(self, image: Image, proposals: Proposals, mode: PromptMode, text: str) -> np.ndarray:
        """Cosine similarity of every proposal's prompt with ``text``: ``(N,) float32``."""
        img = self.image_embeddings(image, proposals, mode)
        txt = self.text_embedding(text)
        with torch.inference_mode():
            return (img @ txt).cpu().numpy().astype(np.float32)

    # -- the tool ----------------------------------------------------------------------

    async def __call__(self, ws: Workspace, params: Any) -> Ranking:
        proposals = ws.require_proposals()
        if proposals.masks.shape[1:] != ws.image.size:
            raise ToolError(
                f"the proposals are {proposals.masks.shape[2]}x{proposals.masks.shape[1]} but the "
                f"image is {ws.image.width}x{ws.image.height}; propose again on this image"
            )
        query = self.resolve_query(ws, params)
        text = apply_template(params.prompt_template, query)
        scores = await run_on_device(
            self.settings.device, self.scores, ws.image, proposals, params.mode, text
        )
        return Ranking.from_scores(
            scores,
            query=query,
            temperature=params.temperature,
            proposals_digest=proposals.digest,
            source=self.name,
        )
