"""The architecture holds: no import cycle, imports point down the layers, no product module
imports the test doubles, small modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from architecture.import_graph import (
    cycles,
    doubles_violations,
    import_graph,
    layer_violations,
    long_modules,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_no_import_cycle_between_modules() -> None:
    assert cycles(import_graph(ROOT)) == []


@pytest.mark.slow
def test_imports_point_down_the_layers() -> None:
    assert layer_violations(import_graph(ROOT)) == []


def test_no_product_module_imports_the_test_doubles() -> None:
    assert doubles_violations(import_graph(ROOT)) == []


def test_no_module_over_400_lines() -> None:
    assert long_modules(ROOT) == []


def _plant(root: Path, files: dict[str, str]) -> Path:
    for pkg in ("bench", "agent", "tools", "checkpoints", "cache"):
        (root / pkg).mkdir(parents=True, exist_ok=True)
        (root / pkg / "__init__.py").write_text("")
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


def test_a_planted_cycle_is_found_even_through_a_function_level_import(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "agent/a.py": "from agent.b import f\n",
            "agent/b.py": "def f():\n    from agent.c import g\n    return g\n",
            "agent/c.py": "import agent.a\n",
            "agent/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent.a import x\n",
            "agent/e.py": "from . import d\n",
        },
    )
    assert cycles(import_graph(root)) == [["agent.a", "agent.b", "agent.c"]]


def test_type_checking_imports_do_not_make_a_cycle(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "agent/a.py": "from agent.b import f\n",
            "agent/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent.a import x\n",
        },
    )
    assert cycles(import_graph(root)) == []


def test_an_upward_import_is_a_layer_violation(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "checkpoints/registry.py": "def f():\n    from tools.errors import E\n",
            "tools/errors.py": "class E(Exception): ...\n",
            "tools/x.py": "from checkpoints.registry import f\n",
        },
    )
    assert layer_violations(import_graph(root)) == [
        "checkpoints.registry imports tools.errors (checkpoints must not import tools)"
    ]


def test_a_product_module_importing_a_test_double_is_a_violation(tmp_path: Path) -> None:
    for pkg in ("bench/doubles", "bench/chaos", "bench/benchmarks", "bench/report"):
        (tmp_path / pkg).mkdir(parents=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    root = _plant(
        tmp_path,
        {
            "bench/doubles/server.py": "class ScriptedServer: ...\n",
            "bench/chaos/row.py": "from bench.doubles.server import ScriptedServer\n",
            "bench/benchmarks/ground.py": "from bench.doubles import server\n",
            "bench/runner.py": "def f():\n    from bench.doubles.server import ScriptedServer\n",
            "bench/report/cases.py": "import bench.doubles\n",
            # Never runs, so it imports nothing (as for the cycle and layer rules).
            "bench/segment.py": "import typing\nif typing.TYPE_CHECKING:\n    import bench.doubles.server\n",
        },
    )
    assert doubles_violations(import_graph(root)) == [
        "bench.report.cases imports bench.doubles (only tests, bench.chaos, bench.benchmarks may)",
        "bench.runner imports bench.doubles.server (only tests, bench.chaos, bench.benchmarks may)",
    ]


def test_a_long_module_is_reported(tmp_path: Path) -> None:
    root = _plant(tmp_path, {"cache/big.py": "x = 1\n" * 401})
    assert long_modules(root) == ["cache.big: 401 lines"]


# Each command in its own fresh interpreter; what it printed is not the point, what it loaded is.
_LOADED_AFTER = """
import contextlib, io, sys
from bench.cli import build_parser, main
build_parser()
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print("LOADED", code, " ".join(sorted(m for m in sys.modules if m.split(".")[:2] == ["bench", "doubles"])))
"""


# Commands that import no models (the parser itself imports every command module).
@pytest.mark.slow
@pytest.mark.parametrize("argv", [["controllers"], ["bench", "datasets"], ["bench", "schema", "summary"]])
def test_no_command_but_chaos_loads_the_test_doubles_at_run_time(argv: list[str]) -> None:
    """The import rule holds at run time too: building the parser imports every command
    module, so one of them importing the doubles (or a module that does) at its top would
    load them into every refseg process."""
    done = subprocess.run(
        [sys.executable, "-c", _LOADED_AFTER, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    line = next((s for s in done.stdout.splitlines() if s.startswith("LOADED")), done.stdout + done.stderr)
    assert line.split()[:2] == ["LOADED", "0"] and len(line.split()) == 2, line
