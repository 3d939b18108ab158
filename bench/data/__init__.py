"""Data sets: adapters that stream evaluation examples, and the protocols that score them.

- :mod:`bench.data.examples`: what an example is; sources stream them as image groups.
- :mod:`bench.data.adapter`: what a dataset adapter declares (how ``--dataset`` names it, how
  it streams, which protocol, what ``config.json`` records); :mod:`bench.data.registry`
  finds them (built-ins and the ``refseg.datasets`` entry-point group).
- :mod:`bench.data.protocol`: per-example scoring, metrics and breakdowns;
  :mod:`bench.data.protocols`: the built-in mask-IoU protocol and its metrics.
- :mod:`bench.data.files`: image files read from the data set's folder only, file digests.
- Built-in adapters: :mod:`bench.data.synthetic` (generated scenes) and
  :mod:`bench.data.refcocom` (RefCOCO-M, hub or parquet, via :mod:`bench.data.parquet`).

:func:`open_dataset` turns a ``--dataset`` string and a selection into a streaming source;
:func:`load_dataset_spec` holds all its examples in memory (for small data sets and tests).
"""

from __future__ import annotations

from bench.data.adapter import DataRequest, DatasetAdapter, DataSource
from bench.data.examples import (
    Example,
    ExampleSet,
    ExampleSource,
    consecutive_groups,
    group_by_image,
    parse_bbox,
    sentence_problem,
)
from bench.data.files import FileImage, file_digest, image_path
from bench.data.protocol import Breakdown, EvalProtocol, ExampleScore, GroundTruth, Metric, score_masks
from bench.data.protocols import CIOU, MASK_IOU, MIOU, SIZE, precision_at
from bench.data.registry import adapter_infos, adapter_named, protocol_named, resolve

__all__ = [
    "CIOU",
    "MASK_IOU",
    "MIOU",
    "SIZE",
    "Breakdown",
    "DataRequest",
    "DataSource",
    "DatasetAdapter",
    "EvalProtocol",
    "Example",
    "ExampleScore",
    "ExampleSet",
    "ExampleSource",
    "FileImage",
    "GroundTruth",
    "Metric",
    "adapter_infos",
    "adapter_named",
    "consecutive_groups",
    "file_digest",
    "group_by_image",
    "image_path",
    "load_dataset_spec",
    "open_dataset",
    "parse_bbox",
    "precision_at",
    "protocol_named",
    "resolve",
    "score_masks",
    "sentence_problem",
]


def open_dataset(spec: str, request: DataRequest | None = None) -> DataSource:
    """The examples ``request`` selects from the data set ``spec`` names, as a stream.

    Args:
        spec: what ``--dataset`` takes: an adapter's name or alias, ``ADAPTER:SOURCE``, or a
            local file or folder in an adapter's layout.
        request: split, number of images, per image, subset seed, cache folder.

    Raises:
        DatasetError: no adapter claims ``spec``, or its source cannot be read.
        ConfigError: a bad selection (``n`` < 1, unknown ``per_image``).
    """
    adapter, source = resolve(spec)
    return adapter.open(source, request or DataRequest())


def load_dataset_spec(
    spec: str,
    n: int | None = None,
    per_image: str = "all",
    seed: int | None = None,
    *,
    split: str | None = None,
    cache_dir: str | None = None,
    allow_outside_paths: bool = False,
) -> ExampleSet:
    """All examples of :func:`open_dataset` in memory (``seed``: the subset seed; for
    ``synthetic``, the generator's seed)."""
    request = DataRequest(split, n, per_image, seed, cache_dir, allow_outside_paths)
    return ExampleSet.of(open_dataset(spec, request))
