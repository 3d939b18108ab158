"""The dataset adapters: built-ins plus plugins from the ``refseg.datasets`` entry-point group.

A plugin package declares, in its ``pyproject.toml``::

    [project.entry-points."refseg.datasets"]
    my-set = "my_pkg.data:MySetAdapter"

where ``MySetAdapter`` subclasses :class:`bench.data.adapter.DatasetAdapter` (the entry
point's name is the adapter's name). How a ``--dataset`` string finds its adapter
(:func:`resolve`):

1. ``ADAPTER:SOURCE`` (``ADAPTER`` an adapter's name): that adapter, on ``SOURCE``;
2. an adapter's name or alias (``synthetic``, ``refcoco-m``, ``moondream/refcoco-m``);
3. a local file or folder: the first adapter that detects its layout (built-ins first);
4. anything else is an error that lists the names.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from bench.data.adapter import AdapterInfo, DatasetAdapter
from bench.data.protocol import EvalProtocol
from bench.data.protocols import MASK_IOU
from bench.data_errors import DatasetError
from bench.records import MetricsSummary

ENTRY_POINT_GROUP = "refseg.datasets"

BUILTIN_ADAPTERS: dict[str, str] = {
    "synthetic": "bench.data.synthetic:SyntheticAdapter",
    "refcoco-m": "bench.data.refcocom:RefcocomAdapter",
    "refcoco": "bench.data.refcoco:RefcocoAdapter",
    "refcoco+": "bench.data.refcoco:RefcocoPlusAdapter",
    "refcocog": "bench.data.refcoco:RefcocogAdapter",
    "grefcoco": "bench.data.grefcoco:GrefcocoAdapter",
    "reasonseg": "bench.data.reasonseg:ReasonSegAdapter",
    "jsonl": "bench.data.jsonl:JsonlAdapter",
}


def _load(name: str, target: str, origin: str) -> AdapterInfo:
    module_name, _, attr = target.partition(":")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        adapter = obj() if isinstance(obj, type) else obj
    except Exception as exc:  # a broken plugin is listed with its error, never hidden
        return AdapterInfo(
            name, origin, error=f"cannot load {target}: {type(exc).__name__}: {exc}", target=target
        )
    if not isinstance(adapter, DatasetAdapter):
        return AdapterInfo(name, origin, error=f"{target} is not a DatasetAdapter", target=target)
    if adapter.name != name:
        return AdapterInfo(
            name, origin, error=f"{target} calls itself {adapter.name!r}, not {name!r}", target=target
        )
    return AdapterInfo(name, origin, adapter, target=target)


def adapter_infos(*, plugins: bool = True) -> list[AdapterInfo]:
    """Every adapter, built-ins first, each loaded (or with the error its plugin gave)."""
    infos = [_load(name, target, "builtin") for name, target in BUILTIN_ADAPTERS.items()]
    if plugins:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if ep.name not in BUILTIN_ADAPTERS:
                infos.append(_load(ep.name, ep.value, "plugin"))
    return infos


def adapters(*, plugins: bool = True) -> list[DatasetAdapter]:
    """The adapters that load."""
    return [info.adapter for info in adapter_infos(plugins=plugins) if info.adapter is not None]


def adapter_named(name: str) -> DatasetAdapter:
    """The adapter called ``name``.

    Raises:
        DatasetError: no adapter has that name (or its plugin does not load).
    """
    infos = adapter_infos()
    for info in infos:
        if info.name == name:
            if info.adapter is None:
                raise DatasetError(f"dataset adapter {name!r}: {info.error}")
            return info.adapter
    raise DatasetError(f"no dataset adapter {name!r}; {_names(infos)}")


def resolve(spec: str) -> tuple[DatasetAdapter, str]:
    """``(adapter, source)`` for a ``--dataset`` string (see the module docstring).

    Raises:
        DatasetError: no adapter claims it: a missing path, a layout no adapter reads, or an
            unknown name (the message lists what there is).
    """
    infos = adapter_infos()
    loaded = [i.adapter for i in infos if i.adapter is not None]
    prefix, sep, rest = spec.partition(":")
    if sep and rest and any(i.name == prefix for i in infos):
        return adapter_named(prefix), rest
    for adapter in loaded:
        if spec == adapter.name or spec in adapter.aliases:
            return adapter, spec
    path = Path(spec).expanduser()
    if path.exists():
        for adapter in loaded:
            if adapter.detects(path):
                return adapter, spec
        layouts = "; ".join(f"{a.name}: {a.naming}" for a in loaded if a.naming)
        raise DatasetError(
            f"{spec}: no dataset adapter reads this file or folder (not a parquet layout any "
            f"adapter knows, or unreadable). Layouts: {layouts}. Force one with ADAPTER:{spec}"
        )
    if spec.startswith((".", "/", "~")) or path.suffix:
        raise DatasetError(f"{spec}: no such file or folder; {_names(infos)}")
    if "/" not in spec:
        raise DatasetError(f"unknown data set {spec!r}; {_names(infos)}")
    raise DatasetError(
        f"{spec}: no dataset adapter knows this hub name; {_names(infos)}; a hub copy in an "
        f"adapter's layout is ADAPTER:{spec} (e.g. refcoco-m:{spec})"
    )


def _names(infos: list[AdapterInfo]) -> str:
    names = [n for i in infos if i.adapter is not None for n in (i.name, *i.adapter.aliases)]
    broken = [f"{i.name} ({i.error})" for i in infos if i.adapter is None]
    text = f"name one of {', '.join(names)}, or a local file or folder (refseg bench datasets lists them)"
    return text + (f"; plugins that do not load: {'; '.join(broken)}" if broken else "")


def protocol_named(name: str) -> EvalProtocol:
    """The protocol a run was scored with, by the name ``summary.json`` or ``config.json``
    records (``mask-iou`` for runs from before protocols were named).

    Raises:
        DatasetError: no installed adapter defines it (install the plugin that does).
    """
    if name == MASK_IOU.name:
        return MASK_IOU
    for adapter in adapters():
        if adapter.protocol.name == name:
            return adapter.protocol
    raise DatasetError(
        f"protocol {name!r} is not defined by any installed dataset adapter; install the "
        "plugin that provides it (refseg bench datasets lists the installed ones)"
    )


def summary_protocol(protocol: str) -> EvalProtocol | None:
    """The protocol a summary names, or ``None`` when no installed adapter defines it (a
    reader then shows the metrics the summary holds, by key)."""
    try:
        return protocol_named(protocol)
    except DatasetError:
        return None


def metric_columns(metrics: MetricsSummary) -> list[tuple[str, str]]:
    """``(key, label)`` of each metric a summary's protocol defines, in its order (for a
    protocol no installed adapter defines: the metrics the summary holds, labelled by key)."""
    protocol = summary_protocol(metrics.protocol)
    if protocol is not None:
        return [(m.key, m.label) for m in protocol.metrics]
    return [(key, key) for key in metrics.model_extra or {} if not key.endswith("_ci")]
