"""The one path every tool call takes: validate, memoize, run, trace, account.

Controllers (and the VLM agent) never call a tool directly. :meth:`Invoker.call`
validates the arguments against the tool's pydantic model, derives the output's key (tool,
version, model fingerprint, inputs, arguments and the validated options: :func:`cache_key`),
looks the output up in an in-memory LRU and then the disk cache, joins an identical call
already in flight (so concurrent expressions of one image run SAM once), runs the tool,
stores the output with what producing it cost, applies it to the workspace, and writes one trace
event and one cost record (:mod:`agent.costs`: computed, joined or a cache hit, compute
seconds, wait seconds, spent and cold cost).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import numpy as np
from pydantic import BaseModel, ValidationError

from agent.costs import ColdCost, CostBook, Outcome
from agent.tracing import redact_text
from cache.keys import make_key
from cache.lru import LRU
from cache.store import COST_META, ToolCache
from tools.base import Tool, Workspace, validation_problems
from tools.device import compute_clock
from tools.errors import ToolError
from tools.output_fit import check_fits
from tools.registry import ToolRegistry

MEMORY_ENTRIES = 64


def format_validation_error(tool: str, exc: ValidationError) -> str:
    """A short, model-readable description of what was wrong with the arguments."""
    problems = (f"{where or '(arguments)'}: {what}" for where, what in validation_problems(exc))
    return f"invalid arguments for {tool}: " + "; ".join(problems)


@dataclass
class CallContext:
    """Where a call is booked and logged: the episode's cost book and bound logger."""

    costs: CostBook
    log: Any
    step: int = 0


def trace_tool_call(
    ctx: CallContext, tool: str, args: Any, *, seconds: float, cache_hit: bool, **outcome: Any
) -> None:
    """Write a ``tool_call`` trace event: the one place that writes it.

    ``outcome`` is ``result`` (the output's summary) or ``error``, plus ``rejected=True`` for
    a call refused before it reached the tool.
    """
    ctx.log.info(
        "tool_call",
        tool=tool,
        step=ctx.step,
        args=args,
        seconds=round(seconds, 4),
        cache_hit=cache_hit,
        **outcome,
    )


def key_options(tool: Tool, used: Iterable[Tool] = ()) -> dict[str, Any] | None:
    """Every field of the validated options of ``tool`` and of the tools whose state it
    uses (its ``needs``), by tool name; ``None`` when none of them has an ``Options`` model.

    Raises:
        ConfigError: a bad option value or key.
    """
    options = {}
    for each in (tool, *used):
        validated = each.validated_options()
        if validated is not None:
            options[each.name] = validated.model_dump(mode="json")
    return options or None


def cache_key(tool: Tool, ws: Workspace, params: BaseModel, used: Iterable[Tool] = ()) -> str | None:
    """The output's cache key (also the key an identical call in flight is joined by): tool,
    version, model fingerprint, input digests, arguments and the validated options of the
    tool and of ``used`` (the tools in its ``needs``); ``None`` when the tool is not cacheable.

    The options are added here, for every tool alike, so a plugin's settings can never be
    left out of its keys (an option that changes outputs would otherwise serve stale results).
    """
    if not tool.cacheable:
        return None
    return make_key(
        tool.name,
        tool.version,
        tool.fingerprint(),
        tool.key_inputs(ws, params),
        tool.key_args(params),
        key_options(tool, used),
    )


@dataclass
class _Served:
    """How one call was served, filled in as it goes (also when it fails)."""

    outcome: Outcome = "refused"
    compute_s: float = 0.0
    wait_s: float = 0.0  # all of it: on an identical call in flight, and vlm_wait_s
    vlm_wait_s: float = 0.0  # VLM requests held back by the VLM limits or between retries
    cold: ColdCost | None = None
    carries_cold: bool = True  # the first use of this output in the run (see Invoker)


@dataclass
class _Pending:
    """A call in flight for a key: its disk read, then (when that missed) its computation."""

    done: anyio.Event = field(default_factory=anyio.Event)
    computed: bool = False  # it went on to compute (a waiter then joined a computation)


@dataclass(frozen=True)
class _Entry:
    """An output in the memory layer, with what producing it cost (``None``: unknown)."""

    output: Any
    cold: ColdCost | None


def book_call(costs: CostBook, name: str, output: Any, served: _Served) -> None:
    """One cost record; only a computed call spent tokens or money this time."""
    ran = served.outcome == "computed"
    costs.record(
        name,
        outcome=served.outcome,
        seconds=served.compute_s,
        wait_seconds=served.wait_s,
        vlm_wait_seconds=served.vlm_wait_s,
        tokens_in=int(getattr(output, "tokens_in", 0)) if ran else 0,
        tokens_out=int(getattr(output, "tokens_out", 0)) if ran else 0,
        usd=float(getattr(output, "usd", 0.0)) if ran else 0.0,
        cold=served.cold,
        carries_cold=served.carries_cold,
    )


def _cold_of(output: Any, seconds: float) -> ColdCost:
    return ColdCost(
        seconds,
        int(getattr(output, "tokens_in", 0)),
        int(getattr(output, "tokens_out", 0)),
        float(getattr(output, "usd", 0.0)),
    )


def decode_output(
    tool: Tool, record: tuple[dict[str, np.ndarray], dict[str, Any]], ws: Workspace | None = None
) -> Any | None:
    """``tool.Output.from_record(*record)``, or ``None`` when the record is not one of its
    outputs (whatever ``from_record`` raises on a foreign layout or contents that contradict
    themselves, a value of another type) or, given the workspace, does not fit this call
    (:func:`tools.output_fit.check_fits`)."""
    try:
        output = tool.Output.from_record(*record)
        output_type = tool.Output
        if isinstance(output_type, type) and not isinstance(output, output_type):
            return None
        if ws is not None:
            check_fits(ws.image.size, ws.proposals, output)
    except Exception:  # a record of another layout: KeyError, ValueError, TypeError, ...
        return None
    return output


class Invoker:
    """Runs tools from a registry through the cache, the tracer and the cost book.

    Cold cost: from an empty cache, a run would produce each distinct output once and then
    reuse it. So the first call of the run (of this invoker) that uses an output books what
    producing it cost; later hits and joins on it book no cold cost.
    """

    def __init__(self, registry: ToolRegistry, cache: ToolCache | None = None):
        self.registry = registry
        self.cache = cache
        self._memory: LRU[str, _Entry] = LRU(MEMORY_ENTRIES)
        self._inflight: dict[str, _Pending] = {}
        self._cold_booked: set[str] = set()
        self.computed: dict[str, int] = {}

    def _remember(self, key: str, output: Any, cold: ColdCost | None) -> None:
        # Outputs are shared by every episode that hits them: freeze their arrays so an
        # in-place write anywhere fails loudly instead of corrupting other episodes.
        for value in vars(output).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        # A later hit gets the output as a hit sees it: ``as_cached()`` drops facts of the one
        # computation (SAM 3's "this call encoded the image"), as a disk record does.
        as_cached = getattr(output, "as_cached", None)
        self._memory.put(key, _Entry(as_cached() if callable(as_cached) else output, cold))

    def _read_disk(self, tool: Tool, ws: Workspace, key: str) -> tuple[Any, ColdCost | None] | None:
        """The decoded disk entry and its cold cost (blocking). An entry that does not decode to
        the tool's output type (another layout, a foreign writer, inconsistent arrays, NaN) or
        does not fit the call (masks of another size than the image, a ranking of other
        candidates) is a miss: it is dropped, counted (``ToolCache.corrupt``) and recomputed."""
        assert self.cache is not None
        record = self.cache.get(key)
        if record is None:
            return None
        arrays, meta = record
        cold = ColdCost.from_dict(meta.pop(COST_META, None)) if isinstance(meta, dict) else None
        output = decode_output(tool, (arrays, meta), ws)
        if output is None:
            self.cache.discard(key)
            return None
        return output, cold

    @staticmethod
    def _disk_record(output: Any, cold: ColdCost) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``output`` encoded for the disk cache, with its cold cost (run on the cache's thread)."""
        arrays, meta = output.to_record()
        return arrays, {**meta, COST_META: cold.as_dict()}

    def trace_rejected(self, tool: str, args: Any, message: str, ctx: CallContext) -> None:
        """Trace a call refused before validation (unknown tool, unparseable arguments)."""
        trace_tool_call(ctx, tool, args, seconds=0.0, cache_hit=False, error=message, rejected=True)

    def validate(self, tool: Tool, args: dict[str, Any] | BaseModel | None) -> BaseModel:
        if isinstance(args, tool.Params):
            return args
        try:
            return tool.Params.model_validate(args or {})
        except ValidationError as exc:
            raise ToolError(format_validation_error(tool.name, exc)) from None

    async def call(
        self,
        name: str,
        ws: Workspace,
        args: dict[str, Any] | BaseModel | None,
        ctx: CallContext,
    ) -> Any:
        """Run tool ``name`` on the workspace; returns its output (already applied to ``ws``).

        Raises:
            ToolError: bad arguments or a recoverable tool problem (recorded as an error).
            ConfigError: unknown tool.
        """
        tool = self.registry.get(name)
        start = time.perf_counter()
        params_json: Any = args.model_dump(mode="json") if isinstance(args, BaseModel) else args
        served = _Served()

        def trace(**outcome: Any) -> None:
            seconds = time.perf_counter() - start
            hit = served.outcome in ("memory", "disk")
            trace_tool_call(
                ctx, name, params_json, seconds=seconds, cache_hit=hit, served=served.outcome, **outcome
            )

        try:
            params = self.validate(tool, args)
            params_json = params.model_dump(mode="json")
            used = [self.registry.get(needed) for needed in tool.needs]
            result = await self._run(tool, ws, params, cache_key(tool, ws, params, used), served)
        except Exception as exc:
            trace(error=redact_text(f"{type(exc).__name__}: {exc}"))
            ran = served.outcome == "computed"
            ctx.costs.record(
                name,
                outcome="computed" if ran else "refused",
                seconds=served.compute_s,
                wait_seconds=served.wait_s,
                vlm_wait_seconds=served.vlm_wait_s,
                error=True,
            )
            raise
        tool.apply(ws, result)
        trace(result=result.summary())
        book_call(ctx.costs, name, result, served)
        return result

    async def _run(
        self, tool: Tool, ws: Workspace, params: BaseModel, key: str | None, served: _Served
    ) -> Any:
        if key is None:
            return await self._compute(tool, ws, params, None, served)
        joined = False  # waited on an identical call that computed
        while True:
            entry = self._memory.get(key)
            if entry is not None:
                return self._serve(key, entry, "joined" if joined else "memory", served)
            pending = self._inflight.get(key)
            if pending is None:
                break
            t0 = time.perf_counter()
            await pending.done.wait()  # the same call is running for another episode: share it
            served.wait_s += time.perf_counter() - t0
            joined = joined or pending.computed
        pending = self._inflight[key] = _Pending()
        try:
            if self.cache is not None:  # read (and decode) on the cache's thread, off the event loop
                found = await self.cache.io.run(self._read_disk, tool, ws, key)
                if found is not None:
                    self._remember(key, *found)
                    return self._serve(key, _Entry(*found), "disk", served)
            pending.computed = True
            output = await self._compute(tool, ws, params, key, served)
        finally:
            del self._inflight[key]
            pending.done.set()  # identical calls waiting read the output from memory now
        if self.cache is not None and served.cold is not None:  # encoded and written on the cache's
            # thread; nobody waits for it (a later read in this process comes after it)
            self.cache.set_later(key, partial(self._disk_record, output, served.cold))
        return output

    def _serve(self, key: str, entry: _Entry, outcome: Outcome, served: _Served) -> Any:
        """An output that was there (memory, disk) or shared (joined); books its cold cost once."""
        served.outcome, served.cold = outcome, entry.cold
        served.carries_cold = key not in self._cold_booked
        self._cold_booked.add(key)
        return entry.output

    async def _compute(
        self, tool: Tool, ws: Workspace, params: BaseModel, key: str | None, served: _Served
    ) -> Any:
        """Run the tool; its compute time leaves out waiting for a device or the event loop."""
        served.outcome = "computed"
        t0 = time.perf_counter()
        with compute_clock() as clock:
            try:
                output = await tool(ws, params)
            finally:
                served.compute_s = max(0.0, time.perf_counter() - t0 - clock.waited - clock.booked_wait)
                served.wait_s += clock.booked_wait  # what the tool booked: the VLM's waits
                served.vlm_wait_s += clock.booked_wait
        served.cold = _cold_of(output, served.compute_s)
        if key is not None:
            self._remember(key, output, served.cold)  # identical calls waiting read it from here
            self._cold_booked.add(key)
        self.computed[tool.name] = self.computed.get(tool.name, 0) + 1
        return output
