"""Whether a tool output read back from the disk cache fits the call that asked for it.

:mod:`tools.record_checks` checks a record against itself; this checks the decoded output
against what the call knows: masks at the working image's size, a ranking of exactly the
current candidates. The invoker applies it to every output it reads back from the disk cache.
"""

from __future__ import annotations

from typing import Any

from tools.types import Proposals, Ranking


def check_fits(image_size: tuple[int, int], proposals: Proposals | None, output: Any) -> None:
    """Raise ``ValueError`` when ``output`` cannot be this call's answer.

    Args:
        image_size: ``(H, W)`` of the working image.
        proposals: the workspace's current candidates (``None`` before any).
        output: a decoded tool output.
    """
    if isinstance(output, Proposals) and output.masks.shape[1:] != image_size:
        raise ValueError(f"masks of {output.masks.shape[1:]} for a {image_size} image")
    if isinstance(output, Ranking) and proposals is not None:
        if len(output) != len(proposals):
            raise ValueError(f"a ranking of {len(output)} candidates for {len(proposals)}")
        if output.proposals_digest not in ("", proposals.digest):
            raise ValueError("a ranking of other candidates than the current ones")
