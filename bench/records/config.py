"""``config.json``: what defines a run's results (compared on resume) and how it first ran.

``results`` is derived from the option objects (:func:`bench.run_folder.result_config`);
every result line carries a digest of it. ``results.data`` is the selection the user asked
for (``--dataset``, ``--split``, ``--n``, ...), ``results.dataset`` what the data set's
adapter found there (its name, protocol, split and the files with their SHA-256), and
``results.examples`` the examples it yielded. ``run`` says how the first invocation ran.
Files written before configs were versioned (``schema_version`` 0) have no
``results.dataset``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bench.records.written import WRITTEN_BLOCK

CONFIG_SCHEMA_VERSION = 1


class DataSelection(BaseModel):
    """Which examples a run evaluates (the fields of :class:`bench.options.DataSpec`)."""

    model_config = WRITTEN_BLOCK

    dataset: str = Field(description="what --dataset named: an adapter name, a hub name, or a path")
    split: str | None = None
    n: int | None = Field(default=None, description="number of images (None: all)")
    per_image: str = "all"
    seed_subset: int | None = None
    perturb: str = "clean"
    allow_outside_paths: bool = False


class DataFile(BaseModel):
    """One file a data set was read from."""

    model_config = WRITTEN_BLOCK

    path: str
    bytes: int
    sha256: str


class DatasetRecord(BaseModel):
    """What the data set's adapter read: recorded so that a run says exactly which data it saw."""

    model_config = WRITTEN_BLOCK

    adapter: str = Field(description="the dataset adapter (refseg bench datasets lists them)")
    protocol: str = Field(description="the protocol that scores it")
    source: str = Field(description="the hub name or the local path read")
    split: str | None = None
    files: list[DataFile] = Field(default_factory=list, description="local files read, with their digests")
    revision: str | None = Field(
        default=None, description="a hub data set's fingerprint (its cached version)"
    )


class ExamplesRecord(BaseModel):
    # ``dropped`` is written only when the loader dropped something: the block is digested into
    # every result line, so an empty one would change the digest of every earlier run.
    model_config = ConfigDict(extra="allow")

    count: int = Field(description="examples the selection holds")
    digest: str = Field(description="digest of their ids and sentences")
    dropped: dict[str, int] = Field(
        default_factory=dict, description="rows or samples that held no example, by kind"
    )


class ResultsConfig(BaseModel):
    """The settings that change results (compared on resume; digested into every line)."""

    model_config = WRITTEN_BLOCK

    episode: dict[str, Any] = Field(default_factory=dict, description="controller, tools, guards, budgets")
    settings: dict[str, Any] = Field(default_factory=dict, description="tool settings and options")
    vlm: dict[str, Any] | None = None
    data: DataSelection | None = None
    dataset: DatasetRecord | None = None
    examples: ExamplesRecord | None = None


class RunConfig(BaseModel):
    """Everything ``config.json`` holds. A current writer writes every field (its JSON Schema
    requires them, ``refseg bench schema config``); readers default what older files lack."""

    model_config = WRITTEN_BLOCK

    schema_version: int = Field(
        default=0,
        description=f"layout of this file: {CONFIG_SCHEMA_VERSION} now, 0 before files were versioned",
    )
    results: ResultsConfig = Field(default_factory=ResultsConfig)
    run: dict[str, Any] = Field(
        default_factory=dict, description="how the first invocation ran (concurrency, engine, device)"
    )
