"""Every record of a fresh run validates against the JSON Schema `refseg bench schema NAME` prints
(checked with the jsonschema package), and the schemas reject what is not a record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bench.cli import main
from bench.records import CONFIG_SCHEMA_VERSION, SAMPLES_SCHEMA_VERSION, SUMMARY_SCHEMA_VERSION
from bench.records.sample import parse_sample


def printed_schema(name: str, capsys: pytest.CaptureFixture[str]) -> jsonschema.Draft202012Validator:
    assert main(["bench", "schema", name]) == 0
    schema: dict[str, Any] = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("records") / "run"
    args = ["bench", "run", "--dataset", "synthetic", "--toolset", "offline", "--n", "2", "--out", str(out),
            "--quiet", "--bootstrap", "50", "--no-cache"]  # fmt: skip
    assert main(args) == 0
    return out


@pytest.mark.slow
def test_every_line_and_file_of_a_fresh_run_validates(
    fresh_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    samples = printed_schema("samples", capsys)
    lines = [json.loads(line) for line in (fresh_run / "samples.jsonl").read_text().splitlines()]
    assert len(lines) == 34
    for line in lines:
        samples.validate(line)
        assert line["schema_version"] == SAMPLES_SCHEMA_VERSION and list(line)[-1] == "rank_steps"
    summary = json.loads((fresh_run / "summary.json").read_text())
    printed_schema("summary", capsys).validate(summary)
    assert summary["schema_version"] == SUMMARY_SCHEMA_VERSION
    config = json.loads((fresh_run / "config.json").read_text())
    printed_schema("config", capsys).validate(config)
    assert config["schema_version"] == CONFIG_SCHEMA_VERSION
    trace = printed_schema("trace", capsys)
    events = [json.loads(line) for line in (fresh_run / "trace.jsonl").read_text().splitlines()]
    for event in events:
        trace.validate(event)
    assert {e["event"] for e in events} >= {"episode_start", "tool_call", "guard", "episode_end"}
    assert {e["schema_version"] for e in events} == {1}


def test_the_schemas_reject_what_is_not_a_record(fresh_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    samples = printed_schema("samples", capsys)
    line = json.loads((fresh_run / "samples.jsonl").read_text().splitlines()[0])
    for broken in ({**line, "iou": "high"}, {k: v for k, v in line.items() if k != "example_id"},
                   {**line, "mask": {"size": [3], "counts": "x"}}):  # fmt: skip
        assert not samples.is_valid(broken)
        assert parse_sample(json.dumps(broken)) is None  # what the schema refuses, readers skip
    summary = json.loads((fresh_run / "summary.json").read_text())
    assert not printed_schema("summary", capsys).is_valid({**summary, "counts": {"failed": "none"}})
    trace = printed_schema("trace", capsys)
    events = [json.loads(line) for line in (fresh_run / "trace.jsonl").read_text().splitlines()]
    event = next(e for e in events if e["event"] == "tool_call")
    assert trace.is_valid(event) and not trace.is_valid({**event, "tool": 3})
    assert trace.is_valid({"event": "a_plugins_own", "run_id": "r", "anything": [1]})  # other kinds read


def test_an_unknown_record_name_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "schema", "invocations"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_summary_and_config_schemas_require_what_a_writer_always_writes(
    fresh_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.records import RunConfig, Summary

    capsys.readouterr()
    summary_schema, config_schema = printed_schema("summary", capsys), printed_schema("config", capsys)
    assert not summary_schema.is_valid({}) and not config_schema.is_valid({})
    summary = json.loads((fresh_run / "summary.json").read_text())
    config = json.loads((fresh_run / "config.json").read_text())
    for key in ("schema_version", "metrics", "counts", "timing", "costs"):
        assert not summary_schema.is_valid({k: v for k, v in summary.items() if k != key}), key
    assert not summary_schema.is_valid({**summary, "counts": {"ok": 3}})  # the core blocks too
    for key in ("schema_version", "results", "run"):
        assert not config_schema.is_valid({k: v for k, v in config.items() if k != key}), key
    # Readers still take files written before: what they lack reads at its default.
    assert Summary.model_validate({}).schema_version == 0 and RunConfig.model_validate({}).run == {}


@pytest.mark.parametrize("name", ["summary", "config"])
def test_a_written_whole_record_requires_every_field_at_every_depth(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "schema", name]) == 0
    schema: dict[str, Any] = json.loads(capsys.readouterr().out)
    objects = [schema, *schema.get("$defs", {}).values()]
    optional = {
        f"{o.get('title')}.{field}"
        for o in objects
        if o.get("type") == "object"
        for field in o.get("properties", {})
        if field not in o.get("required", [])
    }
    # What a current writer always writes, the schema requires; dropped examples are recorded
    # only when there are some (the block is digested: an empty one would change old digests).
    assert len(objects) > 3 and optional <= {"ExamplesRecord.dropped"}


def test_a_cost_records_schema_lists_exactly_what_the_cost_book_writes() -> None:
    # The record is the readers' contract, the dataclass the writer's: a field added to one
    # and not the other would be dropped by the schema or never written.
    from dataclasses import fields

    from agent.costs import ToolCost
    from bench.records import ToolCostRecord

    written = {f.name: (f.type, f.default) for f in fields(ToolCost)}
    declared = {name: (f.annotation.__name__, f.default) for name, f in ToolCostRecord.model_fields.items()}
    assert written == declared and list(written) == list(declared)
