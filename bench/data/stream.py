"""A run over a streamed data set, in two passes that hold one image group at a time.

The first pass (:func:`index_examples`) reads every example's id and sentence: the run's
example order, its count and digest (what ``config.json`` records), duplicate ids, and what
the data set dropped. The second (:func:`todo_groups`) streams the image groups again and
hands on the examples still to run, each with its position in that order. Between the two,
only the ids are held (a few MB for 100,000 expressions), never the examples.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterator
from dataclasses import dataclass, field

from bench.data.examples import Example, ExampleSource
from bench.data_errors import DatasetError
from tools.errors import ConfigError


@dataclass
class ExampleIndex:
    """The examples of a source, by id, in order.

    Attributes:
        order: example ids in the data set's order.
        digest: short digest of the ids and sentences (which examples a run holds).
        dropped: rows or samples that held no example, by kind (only kinds that occurred).
    """

    order: list[str]
    digest: str
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.order)


def index_examples(source: ExampleSource) -> ExampleIndex:
    """The first pass (see the module docstring).

    Raises:
        ConfigError: two examples share an id (a run could not resume them).
    """
    h = hashlib.sha256()
    order: list[str] = []
    seen: set[str] = set()
    for group in source.groups():
        for ex in group:
            if ex.example_id in seen:
                raise ConfigError(
                    f"the data set has duplicate example ids ({ex.example_id!r}); the runner cannot resume it"
                )
            seen.add(ex.example_id)
            order.append(ex.example_id)
            h.update(f"{ex.example_id}\x00{ex.sentence}\x01".encode())
    dropped = {k: v for k, v in source.dropped.items() if v}
    return ExampleIndex(order, h.hexdigest()[:16], dropped)


def todo_groups(
    source: ExampleSource, index: ExampleIndex, todo: Container[str]
) -> Iterator[list[tuple[int, Example]]]:
    """The second pass: each image group's examples in ``todo``, with their positions in
    ``index.order`` (groups with none are skipped).

    Raises:
        DatasetError: the data set changed between the passes (another example order).
    """
    position = 0
    for group in source.groups():
        items = []
        for ex in group:
            if position >= len(index.order) or index.order[position] != ex.example_id:
                raise DatasetError(
                    f"the data set changed while it was read (example {position}: {ex.example_id!r}); "
                    "run the same command again"
                )
            if ex.example_id in todo:
                items.append((position, ex))
            position += 1
        if items:
            yield items
