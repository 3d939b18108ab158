"""The GPU path's knobs, shared by SAM and CLIP: precision, ``torch.compile``, stage clocks.

- :func:`autocast`: ``fp32`` runs as is; ``bf16`` / ``fp16`` run the model forwards under
  ``torch.autocast`` (CPU and CUDA alike). Callers threshold masks and compute scores in
  float32 afterwards.
- :func:`compiled`: ``torch.compile`` a module or method when the settings ask for it.
- :class:`StageClock`: cumulative seconds per stage; with ``sync`` it waits for the CUDA
  queue at each stage boundary so the seconds belong to the stage that spent them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from tools.precision import check_precision

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
F = TypeVar("F", bound=Callable[..., Any])

# Point prompts per mask-decoder batch when the caller does not say. The decoder repeats
# the image embedding once per point (256x64x64 floats: 4 MiB in fp32), so a batch of 256
# needs about 1 GiB for that tensor alone plus the transformer's activations: fine on any
# current GPU; on CPU, batches beyond 64 bring no gain and only cost memory.
POINTS_PER_BATCH = {"cuda": 256, "cpu": 64}


def device_type(device: str | torch.device) -> str:
    """``"cuda:1"`` -> ``"cuda"``; what ``torch.autocast`` and the per-device defaults key on."""
    return torch.device(device).type


def autocast(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context model forwards run in: nothing for fp32, ``torch.autocast`` otherwise."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type(device), dtype=DTYPES[precision])


def compiled(fn: F, enabled: bool, backend: str = "inductor") -> F:
    """``torch.compile(fn, backend=backend)`` when enabled, else ``fn`` itself.

    Compilation happens lazily on the first call (and again for a new input shape), so
    the first calls are slow: benchmarks warm up before they time.
    """
    if not enabled:
        return fn
    return torch.compile(fn, backend=backend)  # type: ignore[return-value]


def default_points_per_batch(device: str | torch.device) -> int:
    """Prompt batch size for ``device`` when none is given (see :data:`POINTS_PER_BATCH`)."""
    return POINTS_PER_BATCH.get(device_type(device), POINTS_PER_BATCH["cpu"])


def synchronize(device: str | torch.device) -> None:
    """Wait until the device has finished its queued work (a no-op off CUDA)."""
    if device_type(device) == "cuda":
        torch.cuda.synchronize(device)


class StageClock:
    """Cumulative wall seconds per named stage.

    Args:
        device: the device the stages run on.
        sync: wait for the device at each boundary (CUDA runs asynchronously, so without
            it a stage's seconds land in whichever stage next waits for a result). Off by
            default: synchronising costs overlap; benchmarks turn it on.
    """

    def __init__(self, device: str | torch.device = "cpu", sync: bool = False):
        self.device = device
        self.sync = sync
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.sync:
            synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                synchronize(self.device)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def reset(self) -> None:
        self.seconds.clear()
