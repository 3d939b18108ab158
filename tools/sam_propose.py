"""``sam_propose``: text-free candidate masks from segment-anything.

The automatic mask generator's algorithm (point grid, multimask decoding, predicted-IoU
and stability filters, box NMS, optional small-region clean-up), rebuilt around one change:
the image embedding is computed once per image digest and kept in a small LRU, so calls
with other knobs (a denser grid, lower thresholds) re-run only the cheap mask decoder.

Post-processing (stability, boxes, NMS, upscaling of the survivors of the IoU filter only)
stays on the model's device (:mod:`tools.sam_postprocess`); memory stays bounded for large
images: candidates are upscaled in chunks, filtered as they come, and kept bit-packed until
NMS has picked the survivors. On a GPU: ``ToolSettings.precision`` runs the encoder and
decoder under autocast, ``points_per_batch`` defaults per device, concurrent calls on
different images share encoder forwards (``ToolSettings.encoder_batch``), and
``ToolSettings.compile`` compiles the encoder and decoder.

The default grid is 16x16 (the official default is 32x32): on CPU the decoder and the
full-resolution upscaling scale with the number of points, and 16x16 already yields a few
dozen distinct masks per image after NMS. Pass ``points_per_side=32`` for the official
behaviour.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from segment_anything.modeling import Sam
from segment_anything.utils.amg import batch_iterator, batched_mask_to_box, build_all_layer_point_grids
from segment_anything.utils.transforms import ResizeLongestSide
from torchvision.ops.boxes import batched_nms

from cache.lru import LRU
from checkpoints.registry import cached_sha256
from tools.accel import (
    StageClock,
    autocast,
    compiled,
    default_points_per_batch,
)
from tools.base import Tool, ToolSettings, Workspace, run_on_device
from tools.encode_queue import EncodeQueue
from tools.errors import CheckpointError, ConfigError, ToolError
from tools.identity import precision_tag, state_dict_digest
from tools.precision import check_precision
from tools.sam_declaration import (
    SAM_PROPOSE,
    SamProposeOptions,
    SamProposeParams,
)
from tools.sam_loading import (
    SamConfig,
    coerce_config,
    load_sam,
    missing_checkpoint_message,
    resolve_sam_checkpoint,
)
from tools.sam_postprocess import (
    DeviceCandidates,
    HostSurvivors,
    TopScored,
    fewest_upscaled,
    filter_batch,
    nms_survivors,
    top_candidates,
)
from tools.types import Image, Proposals


@dataclass
class _Embedding:
    features: torch.Tensor
    input_size: tuple[int, int]
    original_size: tuple[int, int]


def remove_small_regions(mask: np.ndarray, area_thresh: int, mode: str) -> tuple[np.ndarray, bool]:
    """segment-anything's ``remove_small_regions`` (8-connected) on scipy instead of OpenCV."""
    try:
        from scipy import ndimage
    except ImportError:  # pragma: no cover - scipy ships with the environment
        raise ToolError("min_mask_region_area needs scipy (pip install scipy); set it to 0") from None
    holes = mode == "holes"
    working = np.logical_xor(mask, holes)
    regions, n_labels = ndimage.label(working, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(regions.ravel(), minlength=n_labels + 1)[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    fill = [0, *small]
    if not holes:
        fill = [i for i in range(n_labels + 1) if i not in fill] or [int(np.argmax(sizes)) + 1]
    return np.isin(regions, fill), True


class SamPropose(Tool):
    """Candidate masks for the whole image from SAM's automatic mask generator.

    Args:
        settings: weights, model type, checkpoint, device, seed. Options under
            ``settings.options["sam_propose"]``: ``config`` (a :class:`SamConfig`, a dict,
            or ``"tiny"``: build that architecture instead of ``sam_model_type``) and
            ``embedding_cache`` (embeddings kept, default 8).
        model: an already built SAM to use as is (tests, notebooks).
        config: like the ``config`` option.

    Attributes:
        encodes: images encoded so far (one per distinct image while it stays cached).
        encoder_forwards: image-encoder forwards so far (fewer than ``encodes`` when
            waiting images were encoded together, see ``ToolSettings.encoder_batch``).
        decode_batches: mask-decoder batches run so far.
        clock: seconds spent per stage (``encode``, ``decode``, ``postprocess``).
    """

    declaration = SAM_PROPOSE
    Output = Proposals

    def __init__(
        self,
        settings: ToolSettings | None = None,
        *,
        model: Sam | None = None,
        config: SamConfig | dict[str, Any] | str | None = None,
    ):
        super().__init__(settings)
        options = self.read_options(SamProposeOptions)
        self.config = coerce_config(config if config is not None else options.config)
        check_precision(self.settings.precision)
        if self.settings.encoder_batch < 1:
            raise ConfigError(f"encoder batch must be at least 1, got {self.settings.encoder_batch}")
        if self.settings.points_per_batch is not None and self.settings.points_per_batch < 1:
            raise ConfigError(f"points per batch must be at least 1, got {self.settings.points_per_batch}")
        # A batch of embeddings must fit in the LRU, or the caller's own could be evicted.
        self.cache_size = max(options.embedding_cache, self.settings.encoder_batch)
        self._model = model
        self._injected = model is not None
        self._fingerprint: str | None = None
        self._embeddings: LRU[str, _Embedding] = LRU(self.cache_size)
        self._lock = threading.RLock()
        self._queue = EncodeQueue()
        self._forwards: tuple[Callable[..., Any], Callable[..., Any]] | None = None
        self.clock = StageClock(self.settings.device)
        self.encodes = 0
        self.encoder_forwards = 0
        self.decode_batches = 0

    # -- identity -------------------------------------------------------------------------

    def _label(self) -> str:
        # The architecture is the model's identity, whether it came as the constructor's
        # ``config`` or the option (``sam_prompt``, which decodes on this model, shares it).
        if self.config is not None:
            return f"config-{self.config.digest()}"
        return self.settings.sam_model_type

    def fingerprint(self) -> str:
        """``random:<type>:seed<n>``, ``<type>:sha256:<file hash>`` or ``module:<hash>``,
        followed by ``:bf16`` / ``:fp16`` at those precisions.

        Raises:
            CheckpointError: pretrained weights whose checkpoint file is missing.
        """
        if self._fingerprint is None:
            if self._injected:
                assert self._model is not None
                self._fingerprint = f"module:{state_dict_digest(self._model)}"
            elif self.settings.weights == "random":
                self._fingerprint = f"random:{self._label()}:seed{self.settings.seed}"
            else:
                path = resolve_sam_checkpoint(self.settings)
                if not path.is_file():
                    raise CheckpointError(missing_checkpoint_message(path, self.settings.sam_model_type))
                self._fingerprint = f"{self._label()}:sha256:{cached_sha256(path)}"
            self._fingerprint += precision_tag(self.settings.precision)
        return self._fingerprint

    def key_args(self, params: Any) -> dict[str, Any]:
        # Batch sizes (points, images) change speed and memory, not the masks.
        args = params.model_dump(mode="json")
        args.pop("points_per_batch", None)
        return args

    # -- model and embeddings -------------------------------------------------------------

    @property
    def model(self) -> Sam:
        """The SAM model, built (and its checkpoint loaded) on first use."""
        with self._lock:
            if self._model is None:
                self._model = load_sam(self.settings, self.config)
            return self._model

    def load(self) -> None:
        """Build the model now (fail fast on a missing or corrupt checkpoint)."""
        _ = self.model

    def embedding(self, image: Image) -> _Embedding:
        """The image embedding (``features``, ``input_size``, ``original_size``), computed once
        per image while it stays cached and counted in ``encodes``; what ``sam_prompt`` decodes
        its prompts on."""
        with self._lock, torch.inference_mode():
            return self._embedding(image)

    def setup(self) -> None:
        """Hash the checkpoint (the cache fingerprint) and build the model, before any example."""
        self.fingerprint()
        self.load()

    def _compiled(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The image encoder and mask decoder, through ``torch.compile`` when asked."""
        if self._forwards is None:
            model, s = self.model, self.settings
            self._forwards = (
                compiled(model.image_encoder, s.compile, s.compile_backend),
                compiled(model.mask_decoder, s.compile, s.compile_backend),
            )
        return self._forwards

    def _embedding(self, image: Image) -> _Embedding:
        cached = self._embeddings.get(image.digest)
        if cached is not None:
            return cached
        batch = self._queue.batch_for(image, self.settings.encoder_batch, self._embeddings.__contains__)
        embeddings = self._encode(batch)
        # The caller's image (first in the batch) goes in last, as the most recently used.
        for other, emb in reversed(list(zip(batch, embeddings, strict=True))):
            self._embeddings.put(other.digest, emb)
        return embeddings[0]

    def _encode(self, images: list[Image]) -> list[_Embedding]:
        """Encode ``images`` in one forward (each is resized and padded to the input square)."""
        model = self.model
        transform = ResizeLongestSide(model.image_encoder.img_size)
        with self.clock.stage("encode"):
            inputs, sizes = [], []
            for image in images:
                resized = transform.apply_image(image.pixels)
                x = torch.as_tensor(resized, device=model.device).permute(2, 0, 1).contiguous()[None]
                sizes.append((int(x.shape[-2]), int(x.shape[-1])))
                inputs.append(model.preprocess(x))
            with autocast(model.device, self.settings.precision):
                features = self._compiled()[0](torch.cat(inputs))
        self.encodes += len(images)
        self.encoder_forwards += 1
        return [_Embedding(features[i : i + 1], sizes[i], image.size) for i, image in enumerate(images)]

    # -- the algorithm --------------------------------------------------------------------

    def _decode(self, emb: _Embedding, coords: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-res mask logits ``(3B, h, w)`` and predicted IoU ``(3B,)`` for B points."""
        model = self.model
        points = torch.as_tensor(coords, dtype=torch.float, device=model.device)[:, None, :]
        labels = torch.ones(points.shape[0], 1, dtype=torch.int, device=model.device)
        with self.clock.stage("decode"), autocast(model.device, self.settings.precision):
            sparse, dense = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
            low_res, iou = self._compiled()[1](
                image_embeddings=emb.features,
                image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
        self.decode_batches += 1
        return low_res.flatten(0, 1), iou.flatten(0, 1)

    def points_per_batch(self, params: SamProposeParams) -> int:
        """``params.points_per_batch``, else ``ToolSettings.points_per_batch``, else the device's default."""
        s = self.settings
        return params.points_per_batch or s.points_per_batch or default_points_per_batch(s.device)

    def propose_sync(self, image: Image, params: SamProposeParams | None = None) -> Proposals:
        """Blocking version of the tool (runs on the calling thread)."""
        p = params or SamProposeParams()
        with self._lock, torch.inference_mode():
            emb = self._embedding(image)
            h, w = image.size
            grid = build_all_layer_point_grids(p.points_per_side, 0, 1)[0]
            points = grid * np.array([[w, h]], dtype=np.float64)
            transform = ResizeLongestSide(self.model.image_encoder.img_size)
            coords = transform.apply_coords(points, (h, w))
            found = self._best_only(emb, coords, p) if fewest_upscaled(p) else None
            if found is None:  # every candidate upscaled and filtered as it is decoded
                found = DeviceCandidates()
                for (batch,) in batch_iterator(self.points_per_batch(p), coords):
                    low_res, iou = self._decode(emb, batch)
                    with self.clock.stage("postprocess"):
                        filter_batch(self.model, low_res, iou, p, emb.input_size, emb.original_size, found)
            with self.clock.stage("postprocess"):
                return self._select(found, p, (h, w))

    def _best_only(self, emb: _Embedding, coords: np.ndarray, p: SamProposeParams) -> DeviceCandidates | None:
        """With NMS keeping every box: hold the best-scored candidates' logits while decoding,
        then upscale only as many as ``max_proposals`` needs (:func:`top_candidates`); ``None``
        when that cannot promise the full way's result (it then runs)."""
        top = TopScored(cap=min(4 * p.max_proposals + 64, 1024))
        for (batch,) in batch_iterator(self.points_per_batch(p), coords):
            low_res, iou = self._decode(emb, batch)
            with self.clock.stage("postprocess"):
                top.add(low_res, iou, p.pred_iou_thresh)
        with self.clock.stage("postprocess"):
            return top_candidates(self.model, top, p, emb.input_size, emb.original_size)

    def _select(self, found: DeviceCandidates, p: SamProposeParams, size: tuple[int, int]) -> Proposals:
        if len(found) == 0:
            return Proposals.empty(size, self.name)
        if p.min_mask_region_area == 0:
            return self._proposals(nms_survivors(found, p, size[1], p.max_proposals))
        # The clean-up (scipy, on the host) may drop masks: bring every NMS survivor over.
        s = nms_survivors(found, p, size[1], None)
        masks, scores, stability = self._clean_regions(
            s.masks, s.scores, s.stability, p.min_mask_region_area, p.box_nms_thresh
        )
        areas = masks.reshape(len(masks), -1).sum(axis=1).astype(np.int64)
        ok = areas >= max(1, p.min_area)
        order = np.argsort(-scores[ok], kind="stable")[: p.max_proposals]
        masks = masks[ok][order]
        boxes = batched_mask_to_box(torch.from_numpy(masks)).numpy().astype(np.float32).reshape(-1, 4)
        scores, stability, areas = scores[ok][order], stability[ok][order], areas[ok][order]
        return self._proposals(HostSurvivors(masks, boxes, scores, stability, areas))

    def _proposals(self, s: HostSurvivors) -> Proposals:
        return Proposals(
            masks=s.masks,
            boxes=s.boxes,
            scores=s.scores,
            stability=s.stability,
            areas=s.areas,
            source=self.name,
        )

    @staticmethod
    def _clean_regions(
        masks: np.ndarray, scores: np.ndarray, stability: np.ndarray, min_region: int, nms: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fill small holes, drop small islands, then NMS again preferring unchanged masks."""
        cleaned, unchanged = [], []
        for mask in masks:
            mask, changed_holes = remove_small_regions(mask, min_region, "holes")
            mask, changed_islands = remove_small_regions(mask, min_region, "islands")
            cleaned.append(mask)
            unchanged.append(float(not (changed_holes or changed_islands)))
        stack = np.stack(cleaned)
        boxes = batched_mask_to_box(torch.from_numpy(stack)).float()
        keep = batched_nms(boxes, torch.tensor(unchanged), torch.zeros(len(boxes)), iou_threshold=nms)
        idx = np.sort(keep.numpy())
        return stack[idx], scores[idx], stability[idx]

    async def __call__(self, ws: Workspace, params: Any = None) -> Proposals:
        if not isinstance(params, SamProposeParams):
            try:
                params = SamProposeParams.model_validate(params or {})
            except ValidationError as exc:
                raise ToolError(f"invalid arguments for {self.name}: {exc.errors()[0]['msg']}") from None
        # Announced before waiting for the device, so a running call can encode it too.
        with self._queue.waiting(ws.image):
            return await run_on_device(self.settings.device, self.propose_sync, ws.image, params)

    def close(self) -> None:
        with self._lock:
            self._embeddings.clear()
            self._forwards = None
            if not self._injected:
                self._model = None
                self._fingerprint = None
