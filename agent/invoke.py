"""The one path every tool call takes: validate, memoize, run, trace, account.

Controllers (and the VLM agent) never call a tool directly. :meth:`Invoker.call`
validates the arguments against the tool's pydantic model, looks the output up in an
in-memory LRU and then the disk cache, joins an identical call already in flight
(so concurrent expressions of one image run SAM once), runs the tool, stores the
output, applies it to the workspace, and writes one trace event and one cost record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from pydantic import BaseModel, ValidationError

from agent.costs import CostBook
from agent.tracing import redact_text
from cache.keys import make_key
from cache.lru import LRU
from cache.store import ToolCache
from tools.base import Tool, Workspace, validation_problems
from tools.errors import ToolError
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


def cache_key(tool: Tool, ws: Workspace, params: BaseModel) -> str | None:
    """The output's cache key: tool, version, weights, input digests, arguments (None when
    the tool is not cacheable)."""
    if not tool.cacheable:
        return None
    return make_key(
        tool.name, tool.version, tool.fingerprint(), tool.key_inputs(ws, params), tool.key_args(params)
    )


def book_call(costs: CostBook, name: str, output: Any, seconds: float, cache_hit: bool) -> None:
    """One cost record; a cache hit spent no tokens or money this time."""
    costs.record(
        name,
        seconds=seconds,
        cache_hit=cache_hit,
        tokens_in=0 if cache_hit else int(getattr(output, "tokens_in", 0)),
        tokens_out=0 if cache_hit else int(getattr(output, "tokens_out", 0)),
        usd=0.0 if cache_hit else float(getattr(output, "usd", 0.0)),
    )


def decode_output(tool: Tool, record: tuple[dict[str, np.ndarray], dict[str, Any]]) -> Any | None:
    """``tool.Output.from_record(*record)``, or ``None`` when the record is not one of its
    outputs (whatever ``from_record`` raises on a foreign layout, or a value of another type)."""
    try:
        output = tool.Output.from_record(*record)
    except Exception:  # a record of another layout: KeyError, ValueError, TypeError, ...
        return None
    output_type = tool.Output
    return output if not isinstance(output_type, type) or isinstance(output, output_type) else None


class Invoker:
    """Runs tools from a registry through the cache, the tracer and the cost book."""

    def __init__(self, registry: ToolRegistry, cache: ToolCache | None = None):
        self.registry = registry
        self.cache = cache
        self._memory: LRU[str, Any] = LRU(MEMORY_ENTRIES)
        self._inflight: dict[str, anyio.Event] = {}
        self.computed: dict[str, int] = {}

    def _remember(self, key: str, output: Any) -> None:
        # Outputs are shared by every episode that hits them: freeze their arrays so an
        # in-place write anywhere fails loudly instead of corrupting other episodes.
        for value in vars(output).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        self._memory.put(key, output)

    def _lookup(self, tool: Tool, key: str) -> Any | None:
        """The output from memory (decoded once), else from the disk cache, else ``None``.

        A disk entry that does not decode to the tool's output type (another layout, a
        foreign writer, inconsistent arrays) is a miss: it is dropped and recomputed.
        """
        output = self._memory.get(key)
        if output is None and self.cache is not None:
            record = self.cache.get(key)
            if record is not None:
                output = decode_output(tool, record)
                if output is None:
                    self.cache.discard(key)
                else:
                    self._remember(key, output)
        return output

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

        def trace(cache_hit: bool, **outcome: Any) -> float:
            seconds = time.perf_counter() - start
            trace_tool_call(ctx, name, params_json, seconds=seconds, cache_hit=cache_hit, **outcome)
            return seconds

        try:
            params = self.validate(tool, args)
            params_json = params.model_dump(mode="json")
            result, cache_hit = await self._run(tool, ws, params, cache_key(tool, ws, params))
        except Exception as exc:
            seconds = trace(False, error=redact_text(f"{type(exc).__name__}: {exc}"))
            ctx.costs.record(name, seconds=seconds, error=True)
            raise
        tool.apply(ws, result)
        seconds = trace(cache_hit, result=result.summary())
        book_call(ctx.costs, name, result, seconds, cache_hit)
        return result

    async def _run(self, tool: Tool, ws: Workspace, params: BaseModel, key: str | None) -> tuple[Any, bool]:
        if key is None:
            return await tool(ws, params), False
        while True:
            found = self._lookup(tool, key)
            if found is not None:
                return found, True
            pending = self._inflight.get(key)
            if pending is None:
                break
            await pending.wait()  # the same call is running for another episode: share it
        done = self._inflight[key] = anyio.Event()
        try:
            output = await tool(ws, params)
            if self.cache is not None:
                self.cache.set(key, *output.to_record())
            self._remember(key, output)
            self.computed[tool.name] = self.computed.get(tool.name, 0) + 1
            return output, False
        finally:
            del self._inflight[key]
            done.set()
