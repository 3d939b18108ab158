"""``region_propose``: classical region proposals, no weights.

Colour quantisation (a greedy palette over a coarse RGB histogram, refined with a couple of
Lloyd steps on the histogram bins), then connected components per palette colour. On top
of those base regions come variants, so that the proposals are not just the ground truth:
unions of touching regions, splits of regions with a narrow neck, and bounding rectangles.
Scores come from compactness and area. Works on any image size and on grey images; an
image with nothing in it gives ``(0, H, W)`` proposals.

Registered through the ``refseg.tools`` entry-point group, like any third-party plugin.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tools.base import Tool, ToolSettings, Workspace, run_on_device
from tools.offline.declarations import REGION_PROPOSE, RegionParams
from tools.types import Proposals

BIN = 16  # histogram bin width per channel: 16**3 = 4096 bins
UNION_PENALTY = 0.8
SPLIT_PENALTY = 0.9
RECT_PENALTY = 0.6
CONTRAST_FULL = 80.0  # mean RGB step across the boundary that counts as a clear edge


def noise_sigma(pixels: np.ndarray) -> float:
    """Gaussian noise level of an image (Immerkaer 1996: a Laplacian difference kernel
    cancels smooth structure, its mean absolute response measures the noise)."""
    grey = pixels.astype(np.float64).mean(axis=2)
    if min(grey.shape) < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = ndimage.convolve(grey, kernel, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).mean() / 6)


def denoise(pixels: np.ndarray) -> np.ndarray:
    """Per-channel median filter sized to the estimated noise; clean images pass unchanged,
    so exact region boundaries on clean scenes stay exact."""
    sigma = noise_sigma(pixels)
    if sigma <= 3.0:
        return pixels
    size = 3 if sigma <= 8.0 else 5
    return np.stack([ndimage.median_filter(pixels[..., c], size=size) for c in range(3)], axis=2)


def _palette(pixels: np.ndarray, p: RegionParams) -> tuple[np.ndarray, np.ndarray]:
    """Palette colours ``(K, 3)`` and each pixel's palette index ``(H, W)`` (-1 = none)."""
    h, w, _ = pixels.shape
    q = (pixels // BIN).astype(np.int64)
    bins = (q[..., 0] * 16 + q[..., 1]) * 16 + q[..., 2]
    flat = bins.ravel()
    counts = np.bincount(flat, minlength=4096).astype(np.float64)
    sums = np.stack(
        [np.bincount(flat, weights=pixels[..., c].ravel(), minlength=4096) for c in range(3)], axis=1
    )
    used = np.flatnonzero(counts)
    means = sums[used] / counts[used, None]
    weights = counts[used]
    palette: list[np.ndarray] = []
    floor = max(1.0, p.min_area / 4)
    for i in np.argsort(-weights, kind="stable"):
        if weights[i] < floor or len(palette) >= p.max_colors:
            break
        if all(np.linalg.norm(means[i] - c) > p.color_tolerance for c in palette):
            palette.append(means[i])
    if not palette:
        return np.zeros((0, 3)), np.full((h, w), -1, dtype=np.int64)
    pal = np.array(palette)
    for _ in range(2):  # Lloyd steps on bin means, weighted by bin counts
        d = np.linalg.norm(means[:, None, :] - pal[None], axis=2)
        near = d.argmin(axis=1)
        for k in range(len(pal)):
            sel = (near == k) & (d[np.arange(len(near)), near] <= p.color_tolerance)
            if sel.any():
                pal[k] = (means[sel] * weights[sel, None]).sum(0) / weights[sel].sum()
    d = np.linalg.norm(means[:, None, :] - pal[None], axis=2)
    bin_to_pal = np.full(4096, -1, dtype=np.int64)
    bin_to_pal[used] = d.argmin(axis=1)
    assign = bin_to_pal[bins]
    # A bin straddles colours: keep only pixels really within tolerance of their colour.
    dist = np.linalg.norm(pixels - pal[np.maximum(assign, 0)], axis=2)
    assign[dist > p.color_tolerance] = -1
    return pal, assign


def _pad_zero(mask: np.ndarray) -> np.ndarray:
    """``np.pad(mask, 1)``, without its per-call overhead (called for every region)."""
    out = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=mask.dtype)
    out[1:-1, 1:-1] = mask
    return out


def _pad_edge(pixels: np.ndarray) -> np.ndarray:
    """``np.pad(pixels, ((1, 1), (1, 1), (0, 0)), mode="edge")`` of an ``(H, W, C)`` array."""
    h, w = pixels.shape[:2]
    out = np.empty((h + 2, w + 2, *pixels.shape[2:]), dtype=pixels.dtype)
    out[1:-1, 1:-1] = pixels
    out[0, 1:-1], out[-1, 1:-1] = pixels[0], pixels[-1]
    out[:, 0], out[:, -1] = out[:, 1], out[:, -2]
    return out


def _edges(mask: np.ndarray, pixels: np.ndarray) -> tuple[int, float]:
    """Crack length (pixel edges between the mask and the rest) and the mean colour step
    across those edges: flat objects on a textured background have strong edges, the
    pieces a palette cuts out of a smooth background do not."""
    m = _pad_zero(mask)
    px = _pad_edge(pixels)
    vert = m[1:, :] != m[:-1, :]
    horz = m[:, 1:] != m[:, :-1]
    steps = np.concatenate(
        [
            np.linalg.norm(px[1:, :][vert] - px[:-1, :][vert], axis=1),
            np.linalg.norm(px[:, 1:][horz] - px[:, :-1][horz], axis=1),
        ]
    )
    return int(steps.size), float(steps.mean()) if steps.size else 0.0


def _quality(mask: np.ndarray, pixels: np.ndarray, total: int, min_area: int) -> float:
    """Compactness, edge contrast and a log-area term, blended into [0, 1]."""
    area = int(mask.sum())
    perimeter, contrast = _edges(mask, pixels)
    compact = min(1.0, 4 * np.pi * area / max(perimeter, 1) ** 2 / (np.pi / 4))
    span = np.log(max(total, min_area + 1) / min_area)
    size = float(np.clip(np.log(max(area, 1) / min_area) / span, 0.0, 1.0)) if span > 0 else 1.0
    edge = min(1.0, contrast / CONTRAST_FULL)
    # Regions covering most of the image are usually background.
    big = 1.0 if area <= 0.5 * total else 0.5
    return float((0.35 * np.sqrt(compact) + 0.5 * edge + 0.15 * size) * big)


def _split(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Pieces of a region joined by a narrow neck (erode, label, grow back)."""
    area = int(mask.sum())
    if area < 4 * min_area:
        return []
    depth = max(2, round(np.sqrt(area) / 8))
    core = ndimage.binary_erosion(mask, iterations=depth)
    labels, n = ndimage.label(core)
    if n < 2:
        return []
    sizes = ndimage.sum_labels(core, labels, index=np.arange(1, n + 1))
    if (sizes >= min_area / 4).sum() < 2:
        return []
    _, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    owner = labels[iy, ix]
    pieces = [mask & (owner == k) for k in range(1, n + 1) if sizes[k - 1] >= min_area / 4]
    return [m for m in pieces if m.sum() >= min_area]


@dataclass
class _Region:
    """A mask stored as its bounding-box crop: ``mask`` covers rows ``y0..`` and cols ``x0..``."""

    y0: int
    x0: int
    mask: np.ndarray
    score: float = 0.0

    @property
    def y1(self) -> int:
        return self.y0 + self.mask.shape[0]

    @property
    def x1(self) -> int:
        return self.x0 + self.mask.shape[1]

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    def window(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """The mask placed in the window ``[y0:y1, x0:x1]`` (which must contain the box)."""
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        out[self.y0 - y0 : self.y1 - y0, self.x0 - x0 : self.x1 - x0] = self.mask
        return out

    def full(self, h: int, w: int) -> np.ndarray:
        return self.window(0, 0, h, w)


def _tight(mask: np.ndarray, y0: int, x0: int) -> _Region:
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return _Region(y0 + int(ys[0]), x0 + int(xs[0]), mask[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1])


def _union(a: _Region, b: _Region) -> _Region:
    y0, x0, y1, x1 = min(a.y0, b.y0), min(a.x0, b.x0), max(a.y1, b.y1), max(a.x1, b.x1)
    return _Region(y0, x0, a.window(y0, x0, y1, x1) | b.window(y0, x0, y1, x1))


def _score(r: _Region, pixels: np.ndarray, p: RegionParams, penalty: float = 1.0) -> _Region:
    h, w = pixels.shape[:2]
    y0, x0, y1, x1 = max(r.y0 - 1, 0), max(r.x0 - 1, 0), min(r.y1 + 1, h), min(r.x1 + 1, w)
    r.score = penalty * _quality(r.window(y0, x0, y1, x1), pixels[y0:y1, x0:x1], h * w, p.min_area)
    return r


def _iou(a: _Region, b: _Region) -> float:
    if a.x0 >= b.x1 or b.x0 >= a.x1 or a.y0 >= b.y1 or b.y0 >= a.y1:
        return 0.0
    y0, x0, y1, x1 = min(a.y0, b.y0), min(a.x0, b.x0), max(a.y1, b.y1), max(a.x1, b.x1)
    wa, wb = a.window(y0, x0, y1, x1), b.window(y0, x0, y1, x1)
    return float((wa & wb).sum() / (wa | wb).sum())


def _base_regions(assign: np.ndarray, p: RegionParams) -> tuple[list[_Region], np.ndarray]:
    """Connected components per palette colour, and a map of region ids (1-based)."""
    regions: list[_Region] = []
    ids = np.zeros(assign.shape, dtype=np.int64)
    for k in np.unique(assign[assign >= 0]):
        labels, n = ndimage.label(assign == k)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        for lab, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None or sizes[lab] < p.min_area:
                continue
            crop = labels[sl] == lab
            regions.append(_Region(sl[0].start, sl[1].start, crop))
            ids[sl][crop] = len(regions)
    return regions, ids


def _variants(base: list[_Region], ids: np.ndarray, pixels: np.ndarray, p: RegionParams) -> list[_Region]:
    """Splits, bounding rectangles and unions of touching pairs of the best base regions."""
    h, w = ids.shape
    out: list[_Region] = []
    best = sorted(range(len(base)), key=lambda i: -base[i].score)[: max(p.max_proposals // 2, 1)]
    chosen = set(best)
    for i in best:
        r = base[i]
        for piece in _split(r.mask, p.min_area):
            out.append(_score(_tight(piece, r.y0, r.x0), pixels, p, SPLIT_PENALTY))
        if r.area <= 0.25 * h * w:
            rect = _Region(r.y0, r.x0, np.ones_like(r.mask))
            out.append(_score(rect, pixels, p, RECT_PENALTY))
        y0, x0, y1, x1 = max(r.y0 - 2, 0), max(r.x0 - 2, 0), min(r.y1 + 2, h), min(r.x1 + 2, w)
        m = r.window(y0, x0, y1, x1)
        ring = ndimage.binary_dilation(m, iterations=2) & ~m
        for j in np.unique(ids[y0:y1, x0:x1][ring]):
            if j - 1 > i and j - 1 in chosen:  # each touching pair once
                out.append(_score(_union(r, base[j - 1]), pixels, p, UNION_PENALTY))
    return out


def _nms(regions: list[_Region], thresh: float, limit: int) -> list[_Region]:
    keep: list[_Region] = []
    for r in sorted(regions, key=lambda r: -r.score):
        if len(keep) >= limit:
            break
        if all(_iou(r, k) < thresh for k in keep):
            keep.append(r)
    return keep


def propose_regions(pixels: np.ndarray, p: RegionParams) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``(N, H, W) bool`` and scores ``(N,) float32``, best first."""
    h, w = pixels.shape[:2]
    if p.denoise:
        pixels = denoise(pixels)
    pixels = pixels.astype(np.float64)
    _, assign = _palette(pixels, p)
    base, ids = _base_regions(assign, p)
    for r in base:
        _score(r, pixels, p)
    regions = base + (_variants(base, ids, pixels, p) if p.variants else [])
    keep = _nms(regions, 0.9, p.max_proposals)
    if not keep:
        return np.zeros((0, h, w), dtype=bool), np.zeros(0, dtype=np.float32)
    return np.stack([r.full(h, w) for r in keep]), np.array([r.score for r in keep], dtype=np.float32)


class RegionPropose(Tool):
    """Colour regions and their unions, splits and rectangles as candidate masks."""

    declaration = REGION_PROPOSE
    Output = Proposals

    def __init__(self, settings: ToolSettings | None = None):
        super().__init__(settings)
        self.computes = 0  # real computations (cache misses), for tests and cost accounting

    def fingerprint(self) -> str:
        return "none"

    async def __call__(self, ws: Workspace, params: RegionParams) -> Proposals:
        self.computes += 1
        masks, scores = await run_on_device(self.settings.device, propose_regions, ws.image.pixels, params)
        return Proposals.from_masks(masks, scores=scores, source=self.name)
