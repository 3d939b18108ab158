"""What a dataset adapter is: how a ``--dataset`` string is recognised, how its examples are
streamed, which protocol scores them, and what a run records about them.

An adapter is declared once, as a subclass of :class:`DatasetAdapter` (built in, or from a
plugin package through the ``refseg.datasets`` entry-point group; see
:mod:`bench.data.registry`). ``refseg bench datasets`` lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from bench.data.examples import Example, check_selection, select_rows
from bench.data.files import file_digest
from bench.data.protocol import EvalProtocol
from bench.data.protocols import MASK_IOU
from bench.records import DataFile, DatasetRecord


@dataclass(frozen=True)
class DataRequest:
    """The selection a run asks of a data set (from :class:`bench.options.DataSpec`).

    Attributes:
        split: the split (``None``: the adapter's default).
        n: number of images (``None``: all).
        per_image: ``all`` expressions of an image, or only the ``first``.
        seed_subset: with ``n``, a random ``n`` images drawn with this seed.
        cache_dir: the ``datasets`` library's cache folder (``None``: its default).
        allow_outside_paths: read image paths that lead outside the data set's folder.
    """

    split: str | None = None
    n: int | None = None
    per_image: str = "all"
    seed_subset: int | None = None
    cache_dir: str | None = None
    allow_outside_paths: bool = False

    def __post_init__(self) -> None:
        check_selection(self.n, self.per_image)


class DatasetAdapter:
    """A kind of data set (subclass it; see ``docs/architecture.md``, "Adding a dataset").

    Attributes:
        name: how ``--dataset`` names it (and ``ADAPTER:SOURCE`` forces it on a source).
        description: one line for ``refseg bench datasets``.
        protocol: how its examples are scored.
        aliases: other ``--dataset`` strings that mean it (e.g. a hub name).
        naming: how to name it on ``--dataset``, in words (a local layout, a hub name).
        default_split: the split used when ``--split`` is not given.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    protocol: ClassVar[EvalProtocol] = MASK_IOU
    aliases: ClassVar[tuple[str, ...]] = ()
    naming: ClassVar[str] = ""
    default_split: ClassVar[str | None] = None

    def detects(self, path: Path) -> bool:
        """Whether the local file or folder ``path`` is in this adapter's layout (cheap: read
        a header or a schema, not the data)."""
        return False

    def open(self, source: str, request: DataRequest) -> DataSource:
        """The examples ``request`` selects from ``source`` (a name, a hub name or a path).

        Raises:
            DatasetError: the source does not exist or is not in this adapter's layout.
        """
        raise NotImplementedError

    def split_of(self, request: DataRequest) -> str | None:
        return request.split if request.split is not None else self.default_split


class DataSource:
    """An opened selection of a data set: an :class:`bench.data.examples.ExampleSource`.

    Subclasses implement :meth:`image_groups` (every image group of the whole data set, in
    order, one at a time); this class applies the selection (``n`` images, a seeded subset,
    ``per_image``), counts what held no example, and records what was read.

    Args:
        adapter: the adapter that opened it.
        source: the name or path it was opened from.
        request: the selection.
        total_images: how many image groups the data set has, when known without reading it
            (needed for a seeded subset).
        files: the local files read (their digests go into ``config.json``).
        revision: a hub data set's fingerprint.
    """

    def __init__(
        self,
        adapter: DatasetAdapter,
        source: str,
        request: DataRequest,
        *,
        total_images: int | None = None,
        files: Iterable[Path] = (),
        revision: str | None = None,
    ):
        self.adapter = adapter
        self.source = source
        self.request = request
        self.total_images = total_images
        self.files = list(files)
        self.revision = revision
        self._dropped: dict[str, int] = {}
        self._digests: list[DataFile] | None = None

    @property
    def protocol(self) -> EvalProtocol:
        return self.adapter.protocol

    @property
    def dropped(self) -> dict[str, int]:
        """Rows or samples that held no example, by kind (complete after a full pass)."""
        return dict(self._dropped)

    def drop(self, kind: str, count: int = 1) -> None:
        """Count rows (or samples) that hold no example: the run reports them."""
        self._dropped[kind] = self._dropped.get(kind, 0) + count

    def image_groups(self, wanted: set[int] | None) -> Iterator[tuple[int, list[Example]]]:
        """Every image group in data set order as ``(position, examples)``; with ``wanted``,
        only those positions (others may be skipped unread). A group may be empty (an image
        without examples: count it with :meth:`drop`)."""
        raise NotImplementedError

    def groups(self) -> Iterator[list[Example]]:
        """The selected image groups, in data set order, one at a time."""
        request = self.request
        wanted = None
        if request.seed_subset is not None and request.n is not None:
            if self.total_images is None:
                raise NotImplementedError(f"{self.adapter.name}: a seeded subset needs the number of images")
            wanted = set(select_rows(self.total_images, request.n, request.seed_subset))
        self._dropped = {}
        taken = 0
        groups = self.image_groups(wanted)
        while request.n is None or taken < request.n:  # stop before reading one image too many
            found = next(groups, None)
            if found is None:
                return
            position, group = found
            if wanted is not None and position not in wanted:
                continue
            taken += 1
            if group:
                yield group[:1] if request.per_image == "first" else group

    def record(self) -> DatasetRecord:
        """What was read: adapter, protocol, source, split and the files with their SHA-256."""
        if self._digests is None:
            self._digests = [file_digest(p) for p in self.files]
        return DatasetRecord(
            adapter=self.adapter.name,
            protocol=self.protocol.name,
            source=self.source,
            split=self.adapter.split_of(self.request),
            files=self._digests,
            revision=self.revision,
        )


@dataclass
class AdapterInfo:
    """An adapter as ``refseg bench datasets`` lists it (or why its plugin cannot be loaded)."""

    name: str
    origin: str  # builtin | plugin
    adapter: DatasetAdapter | None = None
    error: str | None = None
    target: str = ""
    extra: dict[str, str] = field(default_factory=dict)
