"""Deterministic synthetic scenes with exact masks and referring expressions.

A scene is a mildly textured background with a handful of flat-coloured shapes (circle,
square, triangle, star) in a few colours. Objects may occlude each other; each object's
mask is exactly its visible pixels. Colours and shapes repeat within a scene, so a bare
"the red one" is ambiguous, and every object gets three kinds of expressions:

- ``direct``: the shortest canonical description that singles it out ("the red circle",
  or "the red circle on the left" when there are two red circles);
- ``spatial``: colour, shape and a position word ("the blue square at the top");
- ``paraphrase``: the same content with synonyms the attribute ranker does not know
  ("the crimson disc near the left edge", "scarlet round thing").

Same seed, same scene, byte for byte: tests and benchmarks can rely on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw
from scipy import ndimage

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 38, 40),
    "green": (44, 160, 64),
    "blue": (36, 78, 212),
    "yellow": (238, 212, 36),
    "orange": (242, 134, 24),
    "purple": (132, 56, 176),
}
SHAPES = ("circle", "square", "triangle", "star")
KINDS = ("direct", "spatial", "paraphrase")

# Paraphrase vocabulary: plain English the attribute ranker deliberately does not know.
COLOR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "red": ("crimson", "scarlet", "ruby", "cherry-coloured"),
    "green": ("emerald", "grass-green", "jade", "leafy"),
    "blue": ("azure", "navy", "cobalt", "sapphire"),
    "yellow": ("golden", "lemon", "canary", "mustard"),
    "orange": ("tangerine", "amber", "pumpkin-coloured", "apricot"),
    "purple": ("violet", "lilac", "plum", "mauve"),
}
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("disc", "round thing", "ball", "dot"),
    "square": ("box", "block", "tile", "square shape"),
    "triangle": ("wedge", "pyramid", "three-sided shape", "triangular shape"),
    "star": ("five-pointed shape", "starfish shape", "spiky shape", "star shape"),
}
# Position paraphrases: some keep the canonical word inside, some do not.
POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "near the left edge", "leftmost", "on the left-hand side"),
    "right": ("on the right", "near the right edge", "rightmost", "on the right-hand side"),
    "top": ("at the top", "near the top edge", "uppermost", "higher up"),
    "bottom": ("at the bottom", "near the bottom edge", "lowest", "lower down"),
    "middle": ("in the middle", "in the centre", "central", "in the center"),
}
SPATIAL_CANONICAL = {
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "middle": "in the middle",
}


@dataclass
class SceneObject:
    """One object of a scene.

    Attributes:
        object_id: 1-based id, unique in the scene.
        shape: one of :data:`SHAPES`.
        color: one of :data:`COLORS`.
        mask: ``(H, W) bool``, exactly the object's visible pixels.
        bbox_xywh: ``(x, y, w, h)`` of the visible mask (inclusive extents).
        expressions: referring expressions for this object.
        kinds: the kind of each expression (``direct``, ``spatial``, ``paraphrase``).
        position: the position word that singles it out among same colour-and-shape
            objects (or its absolute position when it is alone).
    """

    object_id: int
    shape: str
    color: str
    mask: np.ndarray
    bbox_xywh: tuple[int, int, int, int]
    expressions: list[str]
    kinds: list[str] = field(default_factory=list)
    position: str = ""

    def expressions_of(self, kind: str) -> list[str]:
        """The expressions of one kind."""
        return [e for e, k in zip(self.expressions, self.kinds, strict=True) if k == kind]


@dataclass
class Scene:
    """An image and its objects. ``image`` is ``(H, W, 3) uint8``."""

    scene_id: str
    image: np.ndarray
    objects: list[SceneObject]

    def to_png(self, path: str) -> None:
        """Write the image as a PNG file."""
        PILImage.fromarray(self.image).save(path, format="PNG")


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Desaturated base tone + a linear gradient + smooth blotches + pixel noise."""
    base = rng.uniform(115, 175) + rng.uniform(-10, 10, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / max(w, 1) + np.sin(angle) * yy / max(h, 1)) * rng.uniform(-20, 20)
    blotch = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)), sigma=6)
    blotch *= 10.0 / max(float(blotch.std()), 1e-6)
    img = base[None, None, :] + (ramp + blotch)[..., None] + rng.normal(0, 4, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _shape_mask(shape: str, cx: float, cy: float, r: float, h: int, w: int) -> np.ndarray:
    canvas = PILImage.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif shape == "square":
        s = 0.85 * r
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=255)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + 0.75 * r), (cx - r, cy + 0.75 * r)], fill=255)
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            a = -np.pi / 2 + k * np.pi / 5
            pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
        draw.polygon(pts, fill=255)
    else:  # pragma: no cover - internal vocabulary
        raise ValueError(shape)
    return np.asarray(canvas) > 127


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def _position_word(obj_mask: np.ndarray, others: list[np.ndarray], h: int, w: int) -> str:
    """The word that singles the object out among ``others`` (same colour and shape)."""
    cx, cy = _centroid(obj_mask)
    if not others:
        if cx < 0.4 * w:
            return "left"
        if cx > 0.6 * w:
            return "right"
        if cy < 0.4 * h:
            return "top"
        if cy > 0.6 * h:
            return "bottom"
        return "middle"
    ox, oy = _centroid(others[0])
    if abs(cx - ox) >= abs(cy - oy):
        return "left" if cx < ox else "right"
    return "top" if cy < oy else "bottom"


def _separable(masks: list[np.ndarray], min_sep: float) -> bool:
    """Two same-looking objects must be told apart by position."""
    (ax, ay), (bx, by) = _centroid(masks[0]), _centroid(masks[1])
    return max(abs(ax - bx), abs(ay - by)) >= min_sep


def _expressions(
    rng: np.random.Generator, color: str, shape: str, position: str, alone: bool
) -> tuple[list[str], list[str]]:
    spatial = SPATIAL_CANONICAL[position]
    # Twins need the position word already in the direct expression: no separate spatial one.
    exprs = (
        [f"the {color} {shape}", f"the {color} {shape} {spatial}"]
        if alone
        else [f"the {color} {shape} {spatial}"]
    )
    kinds = ["direct", "spatial"] if alone else ["direct"]
    for _ in range(2):
        # Paraphrase the colour, the shape or both (never neither).
        which = int(rng.integers(0, 3))
        c = str(rng.choice(COLOR_SYNONYMS[color])) if which in (0, 2) else color
        s = str(rng.choice(SHAPE_SYNONYMS[shape])) if which in (1, 2) else shape
        pos = str(rng.choice(POSITION_PHRASES[position]))
        if alone and rng.random() < 0.4:
            text = f"{c} {s}" if rng.random() < 0.5 else f"the {s} that is {c}"
        elif pos in ("leftmost", "rightmost", "uppermost", "lowest", "central"):
            text = f"the {pos} {c} {s}"
        else:
            text = f"the {c} {s} {pos}"
        if text not in exprs:
            exprs.append(text)
            kinds.append("paraphrase")
    return exprs, kinds


def generate_scene(seed: int, size: tuple[int, int] = (240, 320)) -> Scene:
    """One scene, fully determined by ``seed``.

    Args:
        seed: random seed.
        size: ``(H, W)``; at least 96 pixels each way.

    Returns:
        A :class:`Scene` with 4-6 objects; no colour-and-shape pair occurs more than twice,
        and a repeated pair is always separable by a position word.
    """
    h, w = size
    if h < 96 or w < 96:
        raise ValueError(f"scenes need at least 96x96 pixels, got {w}x{h} (W x H)")
    rng = np.random.default_rng(seed)
    image = _background(rng, h, w)
    palette = list(rng.choice(list(COLORS), size=int(rng.integers(2, 4)), replace=False))
    shapes = list(rng.choice(SHAPES, size=int(rng.integers(2, 4)), replace=False))
    n_target = int(rng.integers(4, 7))
    scale = min(h, w) / 240.0
    labels = np.zeros((h, w), dtype=np.int32)  # visible object id per pixel, 0 = background
    specs: list[tuple[str, str]] = []
    for _attempt in range(400):
        if len(specs) == n_target:
            break
        color, shape = str(rng.choice(palette)), str(rng.choice(shapes))
        if specs.count((color, shape)) >= 2:
            continue
        r = rng.uniform(17, 32) * scale
        cx, cy = rng.uniform(r + 2, w - r - 2), rng.uniform(r + 2, h - r - 2)
        new = _shape_mask(shape, cx, cy, r, h, w)
        trial = labels.copy()
        trial[new] = len(specs) + 1
        if not _acceptable(trial, labels, specs, color, shape, new, scale):
            continue
        labels = trial
        specs.append((color, shape))
    objects: list[SceneObject] = []
    for i, (color, shape) in enumerate(specs):
        mask = labels == i + 1
        image[mask] = COLORS[color]
        twins = [labels == j + 1 for j, s in enumerate(specs) if s == (color, shape) and j != i]
        position = _position_word(mask, twins, h, w)
        exprs, kinds = _expressions(rng, color, shape, position, alone=not twins)
        objects.append(SceneObject(i + 1, shape, color, mask, _bbox(mask), exprs, kinds, position))
    return Scene(scene_id=f"scene-{seed}", image=image, objects=objects)


def _acceptable(
    trial: np.ndarray,
    before: np.ndarray,
    specs: list[tuple[str, str]],
    color: str,
    shape: str,
    new: np.ndarray,
    scale: float,
) -> bool:
    """Occlusion stays mild, objects stay whole and same-coloured objects never touch."""
    for j, (c, s) in enumerate(specs):
        old = before == j + 1
        vis = trial == j + 1
        if vis.sum() < 0.7 * old.sum() or ndimage.label(vis)[1] != 1:
            return False
        if c == color and (ndimage.binary_dilation(vis, iterations=3) & new).any():
            return False
        if (c, s) == (color, shape) and not _separable([vis, new], 45 * scale):
            return False
    return True


def generate_scenes(n: int, seed: int = 0) -> list[Scene]:
    """``n`` scenes with seeds ``seed, seed + 1, ...``."""
    return [generate_scene(seed + i) for i in range(n)]
