"""``attribute_rank``: rank proposals by the colour, shape and position words of the query.

The vocabulary is small and canonical on purpose (``red``, ``circle``, ``left``,
``biggest``...): no synonyms. A paraphrase ("the crimson disc") shares no word with it and
gets flat, unsure scores; turning it into canonical words is the refiner's job, which is
what makes the closed loop measurable without model weights.

Each proposal is measured once (and memoised per proposals digest): the fraction of its
pixels whose nearest named colour is each colour, its similarity to each shape prototype
(bounding-box fill ratio, isoperimetric ratio, aspect), its centroid and its area. The
score of a proposal is the sum of the matches of the known words; position and size words
are relational: they order the proposals that match the rest of the query best. Scores are
scaled by the fraction of the query's content words that were understood, so a query
half made of unknown words ("the navy triangle on the right") is less sure than its
canonical form: the guard sends it to the refiner instead of trusting half a reading.

Registered through the ``refseg.tools`` entry-point group, like any third-party plugin.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.base import SharedWork, Tool, ToolSettings, Workspace, run_on_device
from tools.errors import ToolError
from tools.offline.declarations import ATTRIBUTE_RANK, AttributeParams
from tools.types import Proposals, Ranking

# Reference RGB of each colour name; pixels take the nearest name.
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (45, 160, 65),
    "blue": (40, 80, 210),
    "yellow": (235, 210, 40),
    "orange": (240, 135, 25),
    "purple": (130, 60, 175),
    "pink": (240, 135, 185),
    "brown": (125, 80, 40),
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "gray": (128, 128, 128),
}
COLOR_WORDS = {**{c: c for c in NAMED_COLORS}, "grey": "gray"}
# Prototypes: (bbox fill ratio, isoperimetric ratio on the pixel-edge perimeter, aspect).
SHAPE_PROTOTYPES: dict[str, tuple[float, float, float]] = {
    "circle": (0.78, 0.60, 1.0),
    "square": (1.00, 0.77, 1.0),
    "triangle": (0.51, 0.39, 0.87),
    "star": (0.39, 0.22, 0.95),
}
SHAPE_SIGMA = (0.15, 0.12, 0.25)
POSITION_WORDS = ("left", "right", "top", "bottom", "middle", "center", "centre")
SIZE_WORDS = ("biggest", "smallest")
VOCABULARY = frozenset([*COLOR_WORDS, *SHAPE_PROTOTYPES, *POSITION_WORDS, *SIZE_WORDS])
# Words that say nothing about the object: they neither count as understood nor as unknown.
STOP_WORDS = frozenset(
    [
        *("the", "a", "an", "this", "its", "it", "one", "thing", "object"),  # determiners, placeholders
        *("on", "at", "in", "of", "to", "with", "and", "is", "that", "which"),  # glue
    ]
)

W_COLOR, W_SHAPE, W_POSITION = 2.0, 2.0, 1.5
GROUP = 0.8  # proposals within 80% of the best attribute match form the group position words order
NO_ATTRIBUTE_WEIGHT = 0.3  # a position word with no colour or shape to anchor it is weak evidence


@dataclass
class ParsedQuery:
    """The canonical words found in a query (everything else is ignored)."""

    colors: list[str]
    shapes: list[str]
    positions: list[str]
    sizes: list[str]
    coverage: float = 1.0

    @property
    def empty(self) -> bool:
        return not (self.colors or self.shapes or self.positions or self.sizes)


def parse_query(query: str) -> ParsedQuery:
    """Pick the canonical colour, shape, position and size words out of ``query``."""
    tokens = re.findall(r"[a-z]+", query.lower())
    colors = [COLOR_WORDS[t] for t in tokens if t in COLOR_WORDS]
    shapes = [t for t in tokens if t in SHAPE_PROTOTYPES]
    positions = ["middle" if t in ("center", "centre") else t for t in tokens if t in POSITION_WORDS]
    sizes = [t for t in tokens if t in SIZE_WORDS]
    content = [t for t in tokens if t not in STOP_WORDS]
    known = sum(t in VOCABULARY for t in content)
    return ParsedQuery(
        list(dict.fromkeys(colors)),
        list(dict.fromkeys(shapes)),
        list(dict.fromkeys(positions)),
        list(dict.fromkeys(sizes)),
        known / len(content) if content else 1.0,
    )


@dataclass
class Features:
    """Per-proposal measurements: ``colors (N, C)`` pixel fractions, ``shapes (N, S)``
    prototype similarities, ``centers (N, 2)`` centroid ``(x, y)`` in [0, 1], ``areas (N,)``."""

    colors: np.ndarray
    shapes: np.ndarray
    centers: np.ndarray
    areas: np.ndarray


def measure(pixels: np.ndarray, proposals: Proposals) -> Features:
    """Measure every proposal's colour make-up, shape, position and area."""
    h, w = pixels.shape[:2]
    ref = np.array(list(NAMED_COLORS.values()), dtype=np.float32)
    px = pixels.reshape(-1, 3).astype(np.float32)
    d = (px**2).sum(1, keepdims=True) - 2 * px @ ref.T + (ref**2).sum(1)[None]
    names = d.argmin(axis=1).reshape(h, w)
    n = len(proposals)
    colors = np.zeros((n, len(ref)), dtype=np.float32)
    shapes = np.zeros((n, len(SHAPE_PROTOTYPES)), dtype=np.float32)
    centers = np.zeros((n, 2), dtype=np.float32)
    protos = np.array(list(SHAPE_PROTOTYPES.values()), dtype=np.float32)
    for i in range(n):
        x0, y0, x1, y1 = (int(v) for v in proposals.boxes[i])
        m = proposals.masks[i, y0 : y1 + 1, x0 : x1 + 1]
        area = int(m.sum())
        if area == 0:
            continue
        colors[i] = np.bincount(names[y0 : y1 + 1, x0 : x1 + 1][m], minlength=len(ref)) / area
        bh, bw = m.shape
        p = np.pad(m, 1)
        perimeter = int((p[1:] != p[:-1]).sum() + (p[:, 1:] != p[:, :-1]).sum())
        feat = np.array([area / (bh * bw), 4 * np.pi * area / perimeter**2, min(bh, bw) / max(bh, bw)])
        z = (feat[None] - protos) / np.array(SHAPE_SIGMA)
        shapes[i] = np.exp(-0.5 * (z**2).sum(1))
        ys, xs = np.nonzero(m)
        centers[i] = ((xs.mean() + x0 + 0.5) / w, (ys.mean() + y0 + 0.5) / h)
    return Features(colors, shapes, centers, proposals.areas.astype(np.float64))


def _relative(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Min-max scale ``values`` over the group (clipped to [0, 1] outside it)."""
    lo, hi = values[group].min(), values[group].max()
    if hi - lo < 0.05:  # a group of one or of look-alikes in one place: use absolute values
        return np.clip(values, 0.0, 1.0)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def score(features: Features, parsed: ParsedQuery) -> np.ndarray:
    """Scores ``(N,)``: attribute matches plus relational position and size terms."""
    n = features.colors.shape[0]
    attr = np.zeros(n, dtype=np.float64)
    names = list(NAMED_COLORS)
    if parsed.colors:
        attr += W_COLOR * np.mean([features.colors[:, names.index(c)] for c in parsed.colors], axis=0)
    shape_names = list(SHAPE_PROTOTYPES)
    if parsed.shapes:
        attr += W_SHAPE * np.mean([features.shapes[:, shape_names.index(s)] for s in parsed.shapes], axis=0)
    relational = parsed.positions + parsed.sizes
    if not relational or n == 0:
        return attr * parsed.coverage
    anchored = bool(parsed.colors or parsed.shapes)
    group = attr >= GROUP * attr.max() if anchored and attr.max() > 0 else np.ones(n, dtype=bool)
    # How much a proposal's position counts: as much as it matches the rest of the query.
    weight = attr / attr.max() if anchored and attr.max() > 0 else np.full(n, NO_ATTRIBUTE_WEIGHT)
    x, y = features.centers[:, 0].astype(np.float64), features.centers[:, 1].astype(np.float64)
    log_area = np.log(np.maximum(features.areas, 1.0))
    values = {
        "left": 1 - x,
        "right": x,
        "top": 1 - y,
        "bottom": y,
        "middle": 1 - np.hypot(x - 0.5, y - 0.5) / np.hypot(0.5, 0.5),
    }
    rel = np.zeros(n, dtype=np.float64)
    for word in relational:
        if word in values:
            rel += _relative(values[word], group)
        else:
            spread = log_area[group].max() - log_area[group].min()
            scaled = (log_area - log_area[group].min()) / spread if spread > 1e-6 else np.ones(n)
            rel += np.clip(scaled if word == "biggest" else 1 - scaled, 0.0, 1.0)
    # A query half understood is half as sure: scale by the fraction of words understood.
    return (attr + W_POSITION * weight * rel / len(relational)) * parsed.coverage


class AttributeRank(Tool):
    """Rank candidate masks by canonical colour, shape and position words."""

    declaration = ATTRIBUTE_RANK
    Output = Ranking
    FEATURE_CACHE = 16

    def __init__(self, settings: ToolSettings | None = None):
        super().__init__(settings)
        self.computes = 0  # real computations (cache misses), for tests and cost accounting
        self._features: SharedWork[str, Features] = SharedWork(self.FEATURE_CACHE)

    def fingerprint(self) -> str:
        return "none"

    @staticmethod
    def query_of(ws: Workspace, params: Any) -> str:
        """The query actually ranked against: ``params.query``, else the workspace's."""
        return params.query if params.query is not None else ws.query

    def key_inputs(self, ws: Workspace, params: Any) -> dict[str, str]:
        proposals = self._proposals(ws)
        query = self.query_of(ws, params)
        return {
            "image": ws.image.digest,
            "proposals": proposals.digest,
            "query": hashlib.sha256(query.encode()).hexdigest(),
        }

    @staticmethod
    def _proposals(ws: Workspace) -> Proposals:
        if ws.proposals is None:
            raise ToolError("no proposals yet: call the propose tool first")
        return ws.proposals

    async def _features_of(self, ws: Workspace, proposals: Proposals) -> Features:
        """The candidates' features, measured once on the device: they do not depend on the
        query, so the other expressions of an image (often asking at the same moment) wait for
        the one measurement instead of queueing for the device thread each."""
        return await self._features.get(
            f"{ws.image.digest}:{proposals.digest}",
            lambda: run_on_device(self.settings.device, measure, ws.image.pixels, proposals),
        )

    async def __call__(self, ws: Workspace, params: AttributeParams) -> Ranking:
        proposals = self._proposals(ws)
        query = self.query_of(ws, params)
        self.computes += 1
        features = await self._features_of(ws, proposals)
        scores = score(features, parse_query(query))
        return Ranking.from_scores(
            scores, query, params.temperature, proposals_digest=proposals.digest, source=self.name
        )
