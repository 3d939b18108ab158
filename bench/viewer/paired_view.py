"""The compare page's paired difference: RUN_B - RUN on the examples both hold, with its 95%
interval from the bootstrap over images that ``bench report A B`` uses (one computation,
:func:`bench.report.paired.paired_comparison`), remembered until either run's records change."""

from __future__ import annotations

import threading
from typing import Any

from bench.data.protocols import MIOU
from bench.data.registry import protocol_named
from bench.data_errors import DatasetError
from bench.metrics import DEFAULT_BOOTSTRAP
from bench.records import Summary
from bench.report.paired import paired_comparison, paired_line
from bench.viewer.runs import RunFolder

_LOCK = threading.Lock()
_LATEST: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = {}


def _headline(summary: Summary | None) -> Any:
    """The headline metric of RUN's protocol (mIoU when it cannot be told)."""
    if summary is None:
        return MIOU
    try:
        return protocol_named(summary.metrics.protocol).metric(summary.metrics.headline)
    except (DatasetError, KeyError):  # a protocol no installed adapter defines: the default headline
        return MIOU


def paired_view(a: RunFolder, b: RunFolder, summary_a: Summary | None) -> dict[str, Any] | None:
    """``{"line": ..., "result": ...}`` of RUN_B against RUN (``None``: nothing in common)."""
    key, versions = (str(a.path), str(b.path)), (a.samples.version, b.samples.version)
    with _LOCK:
        cached = _LATEST.get(key)
    if cached is not None and cached[0] == versions:
        result = cached[1]
    else:
        metric = _headline(summary_a)
        result = paired_comparison(a.samples.records, b.samples.records, metric=metric, B=DEFAULT_BOOTSTRAP)
        with _LOCK:
            _LATEST[key] = (versions, result)
    if result.get("diff") is None:
        return None
    return {"line": paired_line(a.name, b.name, result), "result": result}
