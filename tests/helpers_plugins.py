"""Make a plugin package discoverable through its entry points, offline and without pip.

A package under ``tests/`` (``tests/plugin_package/``: its own ``pyproject.toml`` and
modules) is "installed" the way an installer leaves it: a ``<name>-<version>.dist-info``
folder with ``METADATA`` and ``entry_points.txt`` in a directory on the path, beside the
package's source. :func:`importlib.metadata.entry_points` then finds every group the
``pyproject.toml`` declares (``refseg.tools``, ``refseg.controllers``, ``refseg.datasets``...),
exactly as it finds an installed distribution's; nothing is written into the repository or the
virtual environment.

In-process: ``sys.path`` gets the returned paths (see :func:`install_in_process`).
Subprocess: :func:`plugin_env` puts them on ``PYTHONPATH``.
"""

from __future__ import annotations

import configparser
import io
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import invalidate_caches
from pathlib import Path

PLUGIN_PACKAGE = Path(__file__).resolve().parent / "plugin_package"


def entry_points_of(package: Path = PLUGIN_PACKAGE) -> dict[str, dict[str, str]]:
    """``{group: {name: "module:attr"}}`` as the package's ``pyproject.toml`` declares them."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    return {group: dict(points) for group, points in project.get("entry-points", {}).items()}


def install_plugin_package(target: Path, package: Path = PLUGIN_PACKAGE) -> list[Path]:
    """Write the package's ``.dist-info`` into ``target``; returns the paths to put on the path.

    Args:
        target: an empty directory (a test's ``tmp_path`` / "site"), created if missing.
        package: the project folder (its ``pyproject.toml`` and top-level modules).

    Returns:
        ``[target, package]``: the metadata and the importable source.
    """
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep entry-point names' case
    for group, points in entry_points_of(package).items():
        parser[group] = points
    text = io.StringIO()
    parser.write(text)
    (info / "entry_points.txt").write_text(text.getvalue())
    return [target, package]


def plugin_env(target: Path, package: Path = PLUGIN_PACKAGE) -> dict[str, str]:
    """``os.environ`` with the installed package on ``PYTHONPATH`` (for a ``refseg`` subprocess)."""
    paths = [str(p) for p in install_plugin_package(target, package)]
    old = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, *([old] if old else [])])}


@contextmanager
def install_in_process(target: Path, package: Path = PLUGIN_PACKAGE) -> Iterator[list[Path]]:
    """The package discoverable in this process while the block runs (paths removed after,
    and its modules forgotten, so other tests never see it)."""
    paths = [str(p) for p in install_plugin_package(target, package)]
    sys.path[:0] = paths
    invalidate_caches()
    modules = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    try:
        yield [Path(p) for p in paths]
    finally:
        for p in paths:
            sys.path.remove(p)
        for mod in [m for m in sys.modules if m.split(".")[0] in modules]:
            del sys.modules[mod]
        invalidate_caches()
