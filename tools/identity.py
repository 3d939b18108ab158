"""Identity of a tool's model for cache fingerprints: weights and the precision they run at."""

from __future__ import annotations

import hashlib

import torch

from tools.precision import check_precision


def state_dict_digest(model: torch.nn.Module) -> str:
    """sha256 over the parameter names, shapes and bytes of a model (for injected models)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def precision_tag(precision: str) -> str:
    """What a precision adds to a fingerprint: ``""`` for fp32 (old cache keys stay valid),
    ``":bf16"`` or ``":fp16"`` otherwise, so a bf16 output never answers an fp32 request."""
    return "" if check_precision(precision) == "fp32" else f":{precision}"
