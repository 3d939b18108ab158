"""Appended candidates keep their packed masks: the merged digest is the digest of the masks."""

from __future__ import annotations

import numpy as np

from tools.types import Proposals


def test_an_appended_set_digests_like_a_fresh_one() -> None:
    rng = np.random.default_rng(0)
    base = Proposals.from_masks(rng.random((5, 30, 43)) > 0.5, source="a")
    extra = Proposals.from_masks(
        np.stack([base.masks[1], rng.random((30, 43)) > 0.5]), source="b", origins=["b:box", "b:box"]
    )
    assert len(base.digest) == 64  # the base packs its masks once; the append reuses them
    merged = base.append(extra)
    assert len(merged) == 6  # the duplicate of mask 1 is not added twice
    fresh = Proposals.from_masks(merged.masks)
    assert merged.digest == fresh.digest
    np.testing.assert_array_equal(merged.packed, np.packbits(merged.masks, axis=-1))
    assert list(merged.origins) == ["a"] * 5 + ["b:box"]
    assert base.append(Proposals.from_masks(base.masks[:2])) is base  # nothing new


def test_the_same_two_sets_merge_once_into_one_read_only_set() -> None:
    rng = np.random.default_rng(1)
    base = Proposals.from_masks(rng.random((4, 20, 24)) > 0.5, source="a")
    extra = Proposals.from_masks((rng.random((1, 20, 24)) > 0.5), scores=np.array([0.3]), source="b")
    merged = base.append(extra)
    assert base.append(extra) is merged  # another expression of the image: the same set
    assert not merged.masks.flags.writeable and not merged.scores.flags.writeable
    # Equal contents in other objects merge afresh (identity, not contents, is the key).
    other = Proposals.from_masks(extra.masks, scores=np.array([0.9]), source="b")
    again = base.append(other)
    assert again is not merged and float(again.scores[-1]) == np.float32(0.9)
