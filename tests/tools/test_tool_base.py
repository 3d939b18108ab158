"""tools.base: the per-loop device limiter and its compute clock, the workspace's methods,
tool options."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import numpy as np
import pytest

from tools.base import (
    SharedWork,
    ToolSettings,
    Workspace,
    device_thread,
    normalise_query,
    parse_tool_options,
    run_on_device,
)
from tools.device import compute_clock
from tools.errors import ConfigError
from tools.refine import RefineOptions, RefineQuery
from tools.registry import ToolRegistry
from tools.types import Image, Proposals, Ranking, Refinement


def test_one_thread_per_device_for_the_process_whatever_the_loop() -> None:
    ran_on: list[str] = []

    async def use() -> tuple[int, bool, bool]:
        value = await run_on_device("cpu", lambda: ran_on.append(threading.current_thread().name) or 7)
        same = device_thread("cpu") is device_thread("cpu:0")
        other = device_thread("cpu") is not device_thread("meta")
        return value, same, other

    for _ in range(3):  # loop after loop, as a bench suite runs them
        assert anyio.run(use) == (7, True, True)
    assert len(set(ran_on)) == 1 and ran_on[0].startswith("refseg-device-cpu")
    assert sum(t.name.startswith("refseg-device-cpu") for t in threading.enumerate()) == 1


def test_a_cancelled_call_still_queued_for_the_device_never_runs() -> None:
    ran: list[str] = []

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_on_device, "cpu", time.sleep, 0.3)  # holds the cpu thread
            await anyio.sleep(0.02)
            with anyio.move_on_after(0.02):  # long before the thread is free
                await run_on_device("cpu", ran.append, "queued")
        await run_on_device("cpu", ran.append, "after")

    anyio.run(go)
    assert ran == ["after"]


def test_a_cancelled_call_already_running_is_waited_for() -> None:
    events: list[str] = []

    def work() -> None:
        time.sleep(0.2)
        events.append("ended")

    async def go() -> None:
        with anyio.move_on_after(0.05):
            await run_on_device("cpu", work)
        events.append("caller resumed")

    anyio.run(go)
    assert events == ["ended", "caller resumed"]


def test_compute_clock_books_the_queue_for_the_device_as_waiting() -> None:
    async def go() -> tuple[float, float]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_on_device, "cpu", time.sleep, 0.4)  # holds the cpu thread
            await anyio.sleep(0.05)
            with compute_clock() as clock:
                t0 = time.perf_counter()
                await run_on_device("cpu", time.sleep, 0.1)
                elapsed = time.perf_counter() - t0
        return clock.waited, elapsed

    waited, elapsed = anyio.run(go)
    assert waited >= 0.25  # queued behind the other call
    assert 0.09 <= elapsed - waited < 0.25  # what is left is the call's own 0.1 s


def _workspace() -> Workspace:
    return Workspace(image=Image.from_array(np.zeros((4, 6, 3), np.uint8)), expression="the cat")


def _proposals(n: int) -> Proposals:
    masks = np.zeros((n, 4, 6), bool)
    for i in range(n):
        masks[i, :, i] = True
    return Proposals.from_masks(masks, source="test")


def _ranking(props: Proposals, scores: list[float]) -> Ranking:
    return Ranking.from_scores(np.array(scores), "q", 0.1, props.digest)


def test_workspace_keeps_the_best_ranking_and_the_query_history() -> None:
    ws = _workspace()
    props = _proposals(2)
    assert ws.set_proposals(props) is False  # the first candidates are not a change
    sure, unsure = _ranking(props, [1.0, 0.0]), _ranking(props, [0.5, 0.5])
    ws.set_ranking(sure)
    ws.set_ranking(unsure)
    assert ws.ranking is unsure and ws.best_ranking is sure
    assert ws.set_query("  the black cat ") and ws.query == "the black cat"
    assert not ws.set_query("the black cat") and not ws.set_query("  ")
    assert ws.history == ["the cat", "the black cat"]
    ws.submit(unsure)
    assert ws.ranking is ws.best_ranking is unsure


def test_workspace_rejects_a_repeat_whatever_its_case_spaces_or_punctuation() -> None:
    ws = _workspace()
    assert ws.set_query("the black cat")
    for repeat in ("The Black Cat.", "  the  black cat!", "THE CAT", "the-black cat"):
        assert not ws.set_query(repeat) and ws.tried(repeat)
    assert ws.query == "the black cat" and ws.history == ["the cat", "the black cat"]
    ws.use_query("The cat")  # an agent ranking an earlier query: current again, not recorded twice
    assert ws.query == "The cat" and ws.history == ["the cat", "the black cat"]
    assert normalise_query(" A  Red,  square! ") == "a red square"


def test_new_proposals_drop_the_rankings_that_indexed_the_old_ones() -> None:
    ws = _workspace()
    first = _proposals(2)
    ws.set_proposals(first)
    ws.set_ranking(_ranking(first, [1.0, 0.0]))
    assert ws.set_proposals(_proposals(2)) is False and ws.ranking is not None  # same digest
    assert ws.set_proposals(_proposals(3)) is True
    assert ws.ranking is None and ws.best_ranking is None


def test_tool_apply_goes_through_the_workspace_methods() -> None:
    ws, tool = _workspace(), RefineQuery()
    props = _proposals(2)
    tool.apply(ws, props)
    tool.apply(ws, _ranking(props, [0.2, 0.1]))
    tool.apply(ws, Refinement(query=" a cat ", rationale="", source="test"))
    assert ws.proposals is props and ws.best_ranking is ws.ranking and ws.history == ["the cat", "a cat"]


def test_tool_options_are_validated_into_one_line_errors() -> None:
    assert RefineQuery(ToolSettings()).refiner == "rules"  # the default lives in RefineOptions
    bad = ToolSettings(options={"refine_query": {"refiner": "oracle"}})
    one_line = (
        r"^tool refine_query: option refiner: Input should be 'rules' or 'vlm' "
        r"\(refiner takes string \(rules \| vlm\)\); `refseg tools refine_query` lists the options$"
    )
    with pytest.raises(ConfigError, match=one_line):
        RefineQuery(bad)
    typo = ToolSettings(options={"refine_query": {"refinr": "vlm"}})
    with pytest.raises(ConfigError, match="tool refine_query: option refinr: Extra inputs are not permitted"):
        RefineQuery.check_options(typo)
    with pytest.raises(ConfigError, match="tool refine_query: options: Input should be a valid dictionary"):
        parse_tool_options("refine_query", RefineOptions, "vlm")


def test_registry_checks_options_without_building_tools() -> None:
    registry = ToolRegistry(ToolSettings(options={"refine_query": {"refiner": 3}}), plugins=False)
    with pytest.raises(ConfigError, match="option refiner"):
        registry.check_options(["refine_query"])
    assert registry._tools == {}  # checked on the class: nothing was built
    with pytest.raises(ConfigError, match="unknown tool 'nope'"):
        registry.check_options(["nope"])


def test_shared_work_computes_once_and_a_failed_computation_leaves_nothing() -> None:
    work: SharedWork[str, int] = SharedWork(4)
    calls: list[str] = []

    async def compute(name: str, fail: bool) -> int:
        calls.append(name)
        await anyio.sleep(0.05)
        if fail:
            raise RuntimeError("measurement failed")
        return 7

    async def go() -> tuple[list[Any], int]:
        outcomes: list[Any] = [None] * 3

        async def ask(k: int, fail: bool) -> None:
            try:
                outcomes[k] = await work.get("img", lambda: compute(f"call {k}", fail))
            except RuntimeError as exc:
                outcomes[k] = str(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, 0, True)  # the first computes, and fails
            await anyio.sleep(0.01)
            tg.start_soon(ask, 1, False)  # these wait for it, then one of them computes
            tg.start_soon(ask, 2, False)
        return outcomes, await work.get("img", lambda: compute("later", False))

    outcomes, later = anyio.run(go)
    assert outcomes == ["measurement failed", 7, 7] and later == 7
    assert calls == ["call 0", "call 1"]  # once after the failure; kept for the later call
