"""The recipes of docs/architecture.md ("Where to add things"), each followed step by step.

Every test does what its recipe says, with nothing the recipe leaves out: the tool is a
separate package registered through a real entry point and run from the CLI; the metric is a
function, an entry of the summary and a column of the accuracy table; the command is a module
with ``add_parser`` named in ``bench.cli.COMMANDS``. Where a recipe says to edit a project
function, the test replaces that function everywhere it is used, as the edit would.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_plugins import install_in_process

import bench.cli
from bench.cli import main
from bench.rle import rle_area

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
OFFLINE_RUN = ["--dataset", "synthetic", "--toolset", "offline", "--n", "1", "--per-image", "first"]
OFFLINE_RUN += ["--controller", "oneshot", "--quiet", "--bootstrap", "0"]


def recipe(title: str) -> str:
    """The section ``### <title>`` of docs/architecture.md, up to the next heading."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n### {title}\n")
    end = min(
        i for i in (text.find("\n### ", start + 1), text.find("\n## ", start + 1), len(text)) if i != -1
    )
    return " ".join(text[start:end].split())


def write_project(root: Path, name: str, modules: dict[str, str], entry_points: str = "") -> Path:
    """A plugin project as its author writes it: ``pyproject.toml`` (with ``entry_points``, the
    TOML of its ``[project.entry-points."..."]`` tables) and its modules, under ``root``."""
    root.mkdir(parents=True)
    pyproject = f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n{textwrap.dedent(entry_points)}'
    (root / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    for rel, source in modules.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


def replace_everywhere(monkeypatch: pytest.MonkeyPatch, original: Callable[..., Any], new: Any) -> None:
    """What editing ``original`` in place does: every project module that holds it holds ``new``."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] not in ("bench", "agent", "tools"):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                monkeypatch.setattr(module, attr, new)


# --- a tool ---------------------------------------------------------------------------------

AREA_RANK = '''
    """``area_rank``: rank candidate masks by their area (the tool recipe's example)."""

    from __future__ import annotations

    import hashlib
    from typing import Literal

    import numpy as np
    from pydantic import Field

    from tools.base import StrictParams, Tool, ToolSettings, Workspace, run_on_device
    from tools.errors import ToolError
    from tools.types import Ranking


    class AreaRankOptions(StrictParams):
        prefer: Literal["largest", "smallest"] = Field(
            default="largest", description="which end of the sizes ranks first"
        )


    class AreaRankParams(StrictParams):
        query: str | None = Field(default=None, description="Text to rank against; default: the query.")
        temperature: float = Field(default=0.1, gt=0, le=10, description="Softmax temperature.")


    class AreaRank(Tool):
        name = "area_rank"
        description = "Rank the candidate masks by area: the largest first (or the smallest)."
        version = "1"
        role = "rank"
        Params = AreaRankParams
        Output = Ranking
        Options = AreaRankOptions

        def __init__(self, settings: ToolSettings | None = None):
            super().__init__(settings)
            self.options = self.read_options(AreaRankOptions)

        def key_inputs(self, ws: Workspace, params: AreaRankParams) -> dict[str, str]:
            query = params.query if params.query is not None else ws.query
            return {
                "image": ws.image.digest,
                "proposals": self._proposals(ws).digest,
                "query": hashlib.sha256(query.encode()).hexdigest(),
            }

        @staticmethod
        def _proposals(ws: Workspace):
            if ws.proposals is None:
                raise ToolError("no proposals yet: call the propose tool first")
            return ws.proposals

        async def __call__(self, ws: Workspace, params: AreaRankParams) -> Ranking:
            proposals = self._proposals(ws)
            areas = await run_on_device(self.settings.device, lambda: proposals.areas.astype(np.float32))
            scores = areas / max(float(areas.max(initial=0.0)), 1.0)
            if self.options.prefer == "smallest":
                scores = -scores
            query = params.query if params.query is not None else ws.query
            return Ranking.from_scores(
                scores, query, params.temperature, proposals_digest=proposals.digest, source=self.name
            )
'''


AREA_RANK_ENTRY_POINTS = """
    [project.entry-points."refseg.tools"]
    area_rank = "area_rank_plugin.rankers:AreaRank"
"""


@pytest.fixture
def area_rank_plugin(tmp_path: Path) -> Iterator[Path]:
    project = write_project(
        tmp_path / "area-rank",
        "refseg-area-rank",
        {"area_rank_plugin/rankers.py": AREA_RANK},
        AREA_RANK_ENTRY_POINTS,
    )
    with install_in_process(tmp_path / "site", project):  # what `pip install` leaves behind
        yield project


def chosen_areas(run_dir: Path) -> list[int]:
    lines = (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return [rle_area(json.loads(line)["mask"]) for line in lines]


@pytest.mark.slow
def test_tool_recipe_a_plugin_ranker_registered_by_entry_point_runs_from_the_cli(
    area_rank_plugin: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = recipe("A tool")
    for step in (
        "tools.base.Tool",
        "Options",
        "key_inputs",
        "run_on_device",
        '"refseg.tools"',
        "--tool-option",
    ):
        assert step in text, step

    assert main(["tools"]) == 0
    listed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["area_rank", "rank", "v1", "plugin"] in [row[:4] for row in listed]

    runs = {}
    for prefer in ("largest", "smallest"):
        runs[prefer] = tmp_path / prefer
        argv = ["bench", "run", *OFFLINE_RUN, "--ranker", "area_rank", "--no-cache"]
        argv += ["--tool-option", f"area_rank.prefer={prefer}", "--out", str(runs[prefer])]
        assert main(argv) == 0, capsys.readouterr().err
        config = json.loads((runs[prefer] / "config.json").read_text(encoding="utf-8"))
        assert config["results"]["episode"]["ranker"] == "area_rank"
        assert config["results"]["settings"]["options"]["area_rank"] == {"prefer": prefer}
        calls = [
            json.loads(line)
            for line in (runs[prefer] / "trace.jsonl").read_text(encoding="utf-8").splitlines()
            if '"tool_call"' in line
        ]
        assert {c["tool"] for c in calls if c.get("event") == "tool_call"} >= {"area_rank"}
    # The option reached the tool: the same proposals, the other end of the sizes chosen.
    largest, smallest = chosen_areas(runs["largest"]), chosen_areas(runs["smallest"])
    assert len(largest) == len(smallest) > 0
    assert all(big > small for big, small in zip(largest, smallest, strict=True))

    # A bad value is refused in one line before any example runs.
    bad = tmp_path / "bad"
    argv = ["bench", "run", *OFFLINE_RUN, "--ranker", "area_rank", "--tool-option", "area_rank.prefer=middle"]
    assert main([*argv, "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tool area_rank: option prefer" in err
    assert not (bad / "samples.jsonl").exists()


# --- a metric -------------------------------------------------------------------------------


@pytest.mark.slow
def test_metric_recipe_a_protocol_metric_reaches_summary_json_the_report_and_the_viewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dataclasses import replace

    from bench.data import MASK_IOU, Metric
    from bench.data.synthetic import SyntheticAdapter
    from bench.records import SampleRecord
    from bench.report import tables

    text = recipe("A metric")
    for step in ("bench.data.Metric", "numerator", "applies", "MASK_IOU", "bench/data/protocols.py"):
        assert step in text, step

    # Step 1-2: a metric over the line's fields, over the expressions that have a target.
    recall = Metric(
        "recall@0.9",
        "Recall@0.9",
        "fraction of expressions whose prediction covers >= 90% of the target",
        numerator=lambda rec: float(rec.gt_area > 0 and rec.inter >= 0.9 * rec.gt_area),
        applies=lambda rec: rec.gt_area > 0,
    )
    # Step 3: added to the protocol of the data set (here the synthetic scenes').
    protocol = replace(MASK_IOU, name="mask-iou-recall", metrics=(*MASK_IOU.metrics, recall))
    monkeypatch.setattr(SyntheticAdapter, "protocol", protocol)

    run_dir = tmp_path / "run"  # two scenes, every expression: predictions that differ
    argv = ["bench", "run", "--dataset", "synthetic", "--toolset", "offline", "--n", "2", "--quiet"]
    assert main([*argv, "--controller", "oneshot", "--out", str(run_dir)]) == 0
    lines = (run_dir / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    records = [SampleRecord.model_validate_json(line) for line in lines]
    kept = [r for r in records if r.gt_area > 0]
    expected = sum(r.inter >= 0.9 * r.gt_area for r in kept) / len(kept)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert 0 < expected < 1  # some expressions are covered, some are not: the metric can tell
    assert summary["metrics"]["recall@0.9"] == pytest.approx(expected)
    lo, hi = summary["metrics"]["recall@0.9_ci"]
    assert lo <= expected <= hi

    capsys.readouterr()
    assert main(["bench", "report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    assert "Recall@0.9" in capsys.readouterr().out  # the terminal table
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    header = next(line for line in report.splitlines() if "Recall@0.9" in line)
    cells = [c.strip() for c in header.strip("|").split("|")]
    row = report.splitlines()[report.splitlines().index(header) + 2]
    assert [c.strip() for c in row.strip("|").split("|")][cells.index("Recall@0.9")] == tables.fmt(expected)

    from starlette.testclient import TestClient

    from bench.viewer import ViewerOptions, create_app

    app = create_app(ViewerOptions(run=run_dir, preload=False))
    page = TestClient(app, base_url="http://127.0.0.1").get("/")
    assert page.status_code == 200 and "Recall@0.9" in page.text and tables.fmt(expected) in page.text


# --- a CLI command --------------------------------------------------------------------------

HELLO_LIBRARY = '''
    """Greetings: the library function the recipe's command calls (no argparse here)."""

    from __future__ import annotations

    from dataclasses import dataclass

    from tools.errors import InputError


    @dataclass(frozen=True)
    class HelloOptions:
        """What ``refseg hello`` does; every default lives here, none in argparse."""

        name: str
        greeting: str = "hello"
        times: int = 1

        def __post_init__(self) -> None:
            if not self.name.strip():
                raise InputError("hello: NAME is empty; give a name, e.g. refseg hello world")
            if self.times < 1:
                raise InputError(f"hello: --times {self.times} is below 1; pass --times 1 or more")


    def greet(options: HelloOptions) -> list[str]:
        return [f"{options.greeting}, {options.name}"] * options.times
'''

HELLO_COMMAND = '''
    """``refseg hello NAME [--greeting WORD] [--times N]``: the CLI recipe's example command."""

    from __future__ import annotations

    import argparse
    from typing import Any

    from hello_plugin.greetings import HelloOptions, greet


    def add_parser(subparsers: Any) -> None:
        p = subparsers.add_parser("hello", help="greet NAME")
        p.add_argument("name", help="who to greet")
        p.add_argument("--greeting", help=f"the word to greet with (default: {HelloOptions.greeting})")
        p.add_argument("--times", type=int, help=f"how many times (default: {HelloOptions.times})")
        p.set_defaults(func=cmd_hello)


    def cmd_hello(args: argparse.Namespace) -> int:
        given = {k: v for k in ("greeting", "times") if (v := getattr(args, k)) is not None}
        for line in greet(HelloOptions(name=args.name, **given)):
            print(line)
        return 0
'''


def test_cli_command_recipe_a_command_module_named_in_commands_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = recipe("A CLI command")
    for step in ("add_parser", "COMMANDS", "bench/cli/__init__.py", "no argparse default", "RefsegError"):
        assert step in text, step
    modules = {"hello_plugin/greetings.py": HELLO_LIBRARY, "hello_plugin/cli_hello.py": HELLO_COMMAND}
    project = write_project(tmp_path / "hello", "hello-command", modules)
    with install_in_process(tmp_path / "site", project):
        monkeypatch.setattr(bench.cli, "COMMANDS", (*bench.cli.COMMANDS, "hello_plugin.cli_hello"))

        assert main(["hello", "world", "--times", "2"]) == 0
        assert capsys.readouterr().out.splitlines() == ["hello, world", "hello, world"]
        assert main(["hello", "you", "--greeting", "hi"]) == 0
        assert capsys.readouterr().out.splitlines() == ["hi, you"]

        assert main(["hello", " "]) == 2  # a RefsegError: one line, its exit code, no traceback
        assert capsys.readouterr().err.splitlines() == [
            "refseg: error: hello: NAME is empty; give a name, e.g. refseg hello world"
        ]

        with pytest.raises(SystemExit):
            main(["hello", "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert "(default: hello)" in help_text and "(default: 1)" in help_text
        with pytest.raises(SystemExit):
            main(["--help"])
        assert "hello" in capsys.readouterr().out
