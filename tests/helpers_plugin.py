"""A plugin package installed the way pip installs one, into a temporary folder on ``sys.path``.

``importlib.metadata`` finds a distribution by its ``<name>-<version>.dist-info`` folder on
``sys.path`` and reads its entry points from ``entry_points.txt`` there; that is all
``pip install`` leaves behind for a pure-Python package (besides the code). So a test that
writes both and puts the folder on ``sys.path`` (or ``PYTHONPATH`` for a child process) has a
really installed plugin: the registries find it through ``importlib.metadata.entry_points``
exactly as they find a third-party one.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest


def write_plugin(
    root: Path,
    dist: str,
    files: Mapping[str, str],
    entry_points: Mapping[str, Mapping[str, str]],
    version: str = "0.1.0",
) -> Path:
    """Write a plugin distribution into ``root`` (the ``site-packages`` of the test).

    Args:
        root: the folder to put on ``sys.path``.
        dist: the distribution's name (``my-plugin``).
        files: module paths relative to ``root`` (``my_pkg/rankers.py``) and their source
            (dedented); missing ``__init__.py`` files of their packages are created.
        entry_points: ``{group: {name: "module:attr"}}``, as under
            ``[project.entry-points."group"]`` in the plugin's ``pyproject.toml``.
        version: the distribution's version.

    Returns:
        ``root``.
    """
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        for parent in Path(rel).parents:
            if parent != Path(".") and not (root / parent / "__init__.py").exists():
                (root / parent / "__init__.py").write_text("", encoding="utf-8")
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = []
    for group, targets in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in targets.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    return root


@contextmanager
def installed(monkeypatch: pytest.MonkeyPatch, root: Path) -> Iterator[Path]:
    """``root`` on ``sys.path`` (and ``PYTHONPATH`` for child processes) while the block runs;
    the plugin's modules are forgotten afterwards, so no other test sees them."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    try:
        yield root
    finally:
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            origin = getattr(module, "__file__", None) or ""
            if origin.startswith(str(root)):
                del sys.modules[name]
