"""Core value types shared by every tool, controller and the cache.

Every output a tool can return round-trips through ``to_record`` / ``from_record``:
a dict of numpy arrays plus a JSON-able dict. That is what the cache stores (as npz and
JSON bytes, never pickle).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np

from cache.lru import LRU
from tools.record_checks import proposals_fields, ranking_fields, refinement_fields

Arrays = dict[str, np.ndarray]
Meta = dict[str, Any]


def digest_array(array: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes: equal arrays give equal digests."""
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


@dataclass(frozen=True, eq=False)
class Image:
    """An RGB image: ``pixels`` is ``(H, W, 3) uint8``; ``digest`` anchors cache keys."""

    pixels: np.ndarray
    digest: str

    @classmethod
    def from_array(cls, pixels: np.ndarray) -> Image:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"Image needs (H, W, 3) uint8, got {pixels.shape} {pixels.dtype}")
        pixels = np.ascontiguousarray(pixels)
        pixels.setflags(write=False)
        return cls(pixels=pixels, digest=digest_array(pixels))

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return self.height, self.width


class ToolOutput(Protocol):
    """What a tool returns: serialisable without pickle and summarisable for traces.

    An output may also have ``as_cached() -> Self``: itself as a cache hit sees it, without
    facts of the one computation that made it (the invoker keeps that in memory for hits).
    """

    def to_record(self) -> tuple[Arrays, Meta]: ...

    @classmethod
    def from_record(cls, arrays: Arrays, meta: Meta) -> Self: ...

    def summary(self) -> Meta: ...


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """XYXY boxes ``(N, 4) float32`` (inclusive pixel extents) of ``(N, H, W)`` masks; empty -> 0."""
    n = masks.shape[0]
    boxes = np.zeros((n, 4), dtype=np.float32)
    for i in range(n):
        ys = np.flatnonzero(masks[i].any(axis=1))
        xs = np.flatnonzero(masks[i].any(axis=0))
        if ys.size:
            boxes[i] = (xs[0], ys[0], xs[-1], ys[-1])
    return boxes


@dataclass(eq=False)
class Proposals:
    """Candidate masks for one image.

    Attributes:
        masks: ``(N, H, W) bool`` at the image's working resolution.
        boxes: ``(N, 4) float32`` XYXY.
        scores: ``(N,) float32`` proposer quality (SAM's predicted IoU).
        stability: ``(N,) float32`` SAM stability score (1.0 where not applicable).
        areas: ``(N,) int64`` mask areas in pixels.
        source: name of the tool that made them.
        origins: ``(N,) str`` provenance of each mask: the proposer's name, or how a prompt
            tool drew it (``sam_prompt:box``, ``region_prompt:points``...); defaults to
            ``source``. Rankers, ``submit`` and reports treat every origin alike.
    """

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    stability: np.ndarray
    areas: np.ndarray
    source: str = ""
    origins: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    _digest: str | None = field(default=None, repr=False)
    _packed: np.ndarray | None = field(default=None, repr=False)  # packbits(masks, axis=-1), once

    def __post_init__(self) -> None:
        n = int(self.masks.shape[0])
        if len(self.origins) != n:
            if len(self.origins):
                raise ValueError(f"{len(self.origins)} origins for {n} masks")
            self.origins = np.full(n, self.source, dtype=f"<U{max(len(self.source), 1)}")

    @classmethod
    def from_masks(
        cls,
        masks: np.ndarray,
        scores: np.ndarray | None = None,
        stability: np.ndarray | None = None,
        source: str = "",
        origins: list[str] | None = None,
    ) -> Proposals:
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3:
            raise ValueError(f"masks must be (N, H, W), got {masks.shape}")
        n = masks.shape[0]
        ones = np.ones(n, dtype=np.float32)
        return cls(
            masks=masks,
            boxes=boxes_from_masks(masks),
            scores=ones if scores is None else np.asarray(scores, dtype=np.float32),
            stability=ones.copy() if stability is None else np.asarray(stability, np.float32),
            areas=masks.sum(axis=(1, 2), dtype=np.int64),
            source=source,
            origins=np.array(origins if origins is not None else [], dtype=str),
        )

    @classmethod
    def empty(cls, size: tuple[int, int], source: str = "") -> Proposals:
        """A valid proposal set with no masks: ``(0, H, W)``."""
        return cls.from_masks(np.zeros((0, *size), dtype=bool), source=source)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def packed(self) -> np.ndarray:
        """The masks bit-packed along their rows (``np.packbits(masks, axis=-1)``), made once."""
        if self._packed is None:
            self._packed = np.packbits(self.masks, axis=-1)
        return self._packed

    @property
    def digest(self) -> str:
        """Content digest of the masks: the cache anchor of anything computed from them."""
        if self._digest is None:
            self._digest = digest_array(self.packed)
        return self._digest

    def to_record(self) -> tuple[Arrays, Meta]:
        return (
            {
                "masks": self.packed,
                "boxes": self.boxes,
                "scores": self.scores,
                "stability": self.stability,
                "areas": self.areas,
            },
            {
                "source": self.source,
                "shape": list(self.masks.shape),
                "digest": self.digest,
                # Only when they say more than ``source``: records of one proposer stay as
                # they were (no tool version bump), and old records decode the same.
                **({"origins": self.origins.tolist()} if self.mixed_origins else {}),
            },
        )

    @classmethod
    def from_record(cls, arrays: Arrays, meta: Meta) -> Proposals:
        """Inverse of :meth:`to_record`, checked before anything is allocated from it (see
        :mod:`tools.record_checks`).

        Raises:
            KeyError, ValueError: the record has another layout, or contents that contradict
                themselves (a cache miss to the invoker).
        """
        fields = proposals_fields(arrays, meta)  # shapes first: nothing is inflated before
        digest = digest_array(arrays["masks"])
        if meta.get("digest", digest) != digest:
            raise ValueError("the stored digest is not the masks' digest")
        return cls(**fields, _digest=digest)

    @property
    def mixed_origins(self) -> bool:
        """Some mask came from elsewhere than ``source`` (e.g. a prompt tool)."""
        return bool((self.origins != self.source).any())

    def origin_counts(self) -> dict[str, int]:
        """How many masks of each origin, in first-seen order."""
        names, first, counts = np.unique(self.origins, return_index=True, return_counts=True)
        order = np.argsort(first)
        return {str(names[i]): int(counts[i]) for i in order}

    def find(self, mask: np.ndarray) -> int:
        """Index of a candidate with exactly these pixels; -1 when there is none."""
        if mask.shape != self.masks.shape[1:]:
            return -1
        area = int(mask.sum())
        for i in np.flatnonzero(self.areas == area):
            if np.array_equal(self.masks[i], mask):
                return int(i)
        return -1

    def append(self, extra: Proposals) -> Proposals:
        """These candidates followed by those of ``extra`` that are not already among them
        (same pixels); ``self`` when ``extra`` adds nothing. The same two objects merge once
        (an image's expressions share both), into one read-only set hashed once.

        Raises:
            ValueError: ``extra`` masks have another size.
        """
        merge = _MERGES.get(key := (id(self), id(extra)))
        if merge is not None and merge[0] is self and merge[1] is extra:
            return merge[2]
        if (merged := self._merged_with(extra)) is not self:  # shared from now on: read-only
            for array in (v for v in vars(merged).values() if isinstance(v, np.ndarray)):
                array.setflags(write=False)
            _MERGES.put(key, (self, extra, merged))  # holding both keeps their ids from reuse
        return merged

    def _merged_with(self, extra: Proposals) -> Proposals:
        if extra.masks.shape[1:] != self.masks.shape[1:]:
            raise ValueError(f"cannot append {extra.masks.shape[1:]} masks to {self.masks.shape[1:]} ones")
        new: list[int] = []
        for i in range(len(extra)):
            seen = any(np.array_equal(extra.masks[i], extra.masks[j]) for j in new)
            if not seen and self.find(extra.masks[i]) < 0:
                new.append(i)
        if not new:
            return self
        added = extra.masks[new]
        return Proposals(
            masks=np.concatenate([self.masks, added]),
            boxes=np.concatenate([self.boxes, extra.boxes[new]]).astype(np.float32, copy=False),
            scores=np.concatenate([self.scores, extra.scores[new]]).astype(np.float32, copy=False),
            stability=np.concatenate([self.stability, extra.stability[new]]).astype(np.float32, copy=False),
            areas=np.concatenate([self.areas, extra.areas[new]]).astype(np.int64, copy=False),
            source=self.source,
            origins=np.concatenate([self.origins, extra.origins[new]]),
            # Rows pack independently: the merged packing is the two packings stacked (the
            # digest of the merged candidates then hashes without packing them all again).
            _packed=np.concatenate([self.packed, np.packbits(added, axis=-1)]),
        )

    def summary(self) -> Meta:
        top = np.argsort(-self.scores)[:3]
        out: Meta = {
            "n_proposals": len(self),
            "top_scores": [round(float(self.scores[i]), 4) for i in top],
        }
        if self.mixed_origins:
            out["origins"] = self.origin_counts()
        return out


# Recent merges by the identities of the two sets (see Proposals.append).
_MERGES: LRU[tuple[int, int], tuple[Proposals, Proposals, Proposals]] = LRU(8)


def softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = scores.astype(np.float64) / max(temperature, 1e-8)
    z -= z.max(initial=0.0) if z.size else 0.0
    e = np.exp(z)
    return (e / e.sum()).astype(np.float32) if e.size else e.astype(np.float32)


@dataclass(eq=False)
class Ranking:
    """Scores of every proposal against one query.

    Attributes:
        scores: ``(N,) float32`` raw similarity (CLIP cosine, or the ranker's own score).
        probs: ``(N,) float32`` ``softmax(scores / temperature)``.
        query: the text the proposals were ranked against.
        temperature: softmax temperature.
        proposals_digest: digest of the proposals this ranking refers to.
    """

    scores: np.ndarray
    probs: np.ndarray
    query: str
    temperature: float
    proposals_digest: str = ""
    source: str = ""

    @classmethod
    def from_scores(
        cls,
        scores: np.ndarray,
        query: str,
        temperature: float,
        proposals_digest: str = "",
        source: str = "",
    ) -> Ranking:
        scores = np.asarray(scores, dtype=np.float32)
        return cls(scores, softmax(scores, temperature), query, temperature, proposals_digest, source)

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def order(self) -> np.ndarray:
        """Proposal indices, best first (stable for ties)."""
        return np.argsort(-self.probs, kind="stable")

    @property
    def top(self) -> int:
        """Index of the best proposal; -1 when there are none."""
        return int(self.order[0]) if len(self) else -1

    @property
    def conf(self) -> float:
        """Top-1 probability."""
        return float(self.probs.max()) if len(self) else 0.0

    @property
    def gap(self) -> float:
        """Top-1 minus top-2 probability (top-1 alone when there is one proposal)."""
        if len(self) == 0:
            return 0.0
        p = np.sort(self.probs)[::-1]
        return float(p[0] - (p[1] if len(p) > 1 else 0.0))

    def to_record(self) -> tuple[Arrays, Meta]:
        return (
            {"scores": self.scores, "probs": self.probs},
            {
                "query": self.query,
                "temperature": self.temperature,
                "proposals_digest": self.proposals_digest,
                "source": self.source,
            },
        )

    @classmethod
    def from_record(cls, arrays: Arrays, meta: Meta) -> Ranking:
        """Inverse of :meth:`to_record` (raises KeyError or ValueError on another layout, or on
        scores and probabilities that are not finite, not of one length, or not a distribution)."""
        return cls(**ranking_fields(arrays, meta))

    def summary(self) -> Meta:
        order = self.order[:3]
        return {
            "query": self.query,
            "top3": [[int(i), round(float(self.probs[i]), 4)] for i in order],
            "conf": round(self.conf, 4),
            "gap": round(self.gap, 4),
        }


@dataclass
class Refinement:
    """A rewritten query and why; ``no_match``: the refiner answered that nothing in the image
    matches the expression (``query`` is then empty)."""

    query: str
    rationale: str = ""
    source: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    usd: float = 0.0
    no_match: bool = False

    def to_record(self) -> tuple[Arrays, Meta]:
        return {}, {
            "query": self.query,
            "rationale": self.rationale,
            "source": self.source,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "usd": self.usd,
            **({"no_match": True} if self.no_match else {}),  # absent otherwise: records as before
        }

    @classmethod
    def from_record(cls, arrays: Arrays, meta: Meta) -> Refinement:
        """Inverse of :meth:`to_record` (ValueError on a field of the wrong type or range)."""
        return cls(**refinement_fields(meta))

    def summary(self) -> Meta:
        out: Meta = {"query": self.query, "rationale": self.rationale[:200]}
        return {**out, "no_match": True} if self.no_match else out
