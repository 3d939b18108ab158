"""Generated scenes whose target the offline proposer misses (for grounded prompts).

:func:`halo_scene` takes :func:`tools.offline.scenes.generate_scene` and paints a ring of
``HALO_WIDTH`` pixels around one object (on background pixels only) in a colour
``HALO_SHIFT`` away from the object's: within ``region_propose``'s colour tolerance, outside
``region_prompt``'s. The proposer's colour regions merge the object with its halo, so no
candidate has the object's exact mask and one-shot and the loop fail however well they
rank, the way SAM's point grid misses an object; a box or a point on the object gets it
back. Object masks stay exact: the halo is background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tools.offline.scenes import COLORS, Scene, SceneObject, generate_scene

HALO_WIDTH = 4
HALO_SHIFT = 30.0  # RGB distance of the halo from the object's colour
MIN_TARGET_AREA = 400


@dataclass
class MissedScene:
    """A scene and the object the proposer misses.

    Attributes:
        scene: the scene (its ``image`` has the halo painted in).
        target: the haloed object; its expressions refer to it.
    """

    scene: Scene
    target: SceneObject

    @property
    def box_xyxy(self) -> tuple[int, int, int, int]:
        """The target's tight box ``[x0, y0, x1, y1]`` in continuous image coordinates."""
        x, y, w, h = self.target.bbox_xywh
        return x, y, x + w, y + h


def halo_colour(rgb: tuple[int, int, int]) -> np.ndarray:
    """``rgb`` moved ``HALO_SHIFT`` towards mid grey (so it stays a valid colour)."""
    c = np.asarray(rgb, dtype=np.float64)
    towards = np.full(3, 128.0) - c
    return np.clip(np.rint(c + HALO_SHIFT * towards / np.linalg.norm(towards)), 0, 255).astype(np.uint8)


def halo_scene(seed: int, size: tuple[int, int] = (240, 320)) -> MissedScene:
    """Scene ``seed`` with a halo around one object (chosen by the seed among the larger ones)."""
    scene = generate_scene(seed, size)
    rng = np.random.default_rng(seed + 10_000)
    big = [o for o in scene.objects if o.mask.sum() >= MIN_TARGET_AREA] or scene.objects
    target = big[int(rng.integers(len(big)))]
    occupied = np.zeros(scene.image.shape[:2], dtype=bool)
    for obj in scene.objects:
        occupied |= obj.mask
    ring = ndimage.binary_dilation(target.mask, iterations=HALO_WIDTH) & ~occupied
    image = scene.image.copy()
    image[ring] = halo_colour(COLORS[target.color])
    haloed = Scene(scene_id=f"halo-{seed}", image=image, objects=scene.objects)
    return MissedScene(haloed, target)


def halo_scenes(n: int, seed: int = 0) -> list[MissedScene]:
    """``n`` haloed scenes with seeds ``seed, seed + 1, ...``."""
    return [halo_scene(seed + i) for i in range(n)]
