"""The one path every tool call takes: validate, memoize, run, trace, account.

Controllers (and the VLM agent) never call a tool directly. :meth:`Invoker.call`
validates the arguments against the tool's pydantic model, looks the output up in an
in-memory LRU and then the disk cache, joins an identical call already in flight
(so concurrent expressions of one image run SAM once), runs the tool, stores the
output, applies it to the workspace, and writes one trace event and one cost record.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np
from pydantic import BaseModel, ValidationError

from agent.costs import CostBook
from agent.tracing import redact_text
from cache.keys import make_key
from cache.store import ToolCache
from tools.base import Tool, Workspace
from tools.errors import ToolError
from tools.registry import ToolRegistry

MEMORY_ENTRIES = 64


def format_validation_error(tool: str, exc: ValidationError) -> str:
    """A short, model-readable description of what was wrong with the arguments."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        problems.append(f"{where}: {err['msg']}")
    return f"invalid arguments for {tool}: " + "; ".join(problems)


@dataclass
class CallContext:
    """Where a call is booked and logged: the episode's cost book and bound logger."""

    costs: CostBook
    log: Any
    step: int = 0


class Invoker:
    """Runs tools from a registry through the cache, the tracer and the cost book."""

    def __init__(self, registry: ToolRegistry, cache: ToolCache | None = None):
        self.registry = registry
        self.cache = cache
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._inflight: dict[str, anyio.Event] = {}
        self.computed: dict[str, int] = {}

    def _memory_get(self, key: str) -> Any | None:
        hit = self._memory.get(key)
        if hit is not None:
            self._memory.move_to_end(key)
        return hit

    def _memory_put(self, key: str, output: Any) -> None:
        # Outputs are shared by every episode that hits them: freeze their arrays so an
        # in-place write anywhere fails loudly instead of corrupting other episodes.
        for value in vars(output).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        self._memory[key] = output
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:
            self._memory.popitem(last=False)

    def _lookup(self, tool: Tool, key: str) -> Any | None:
        """The output from memory (decoded once), else from the disk cache, else ``None``."""
        output = self._memory_get(key)
        if output is None and self.cache is not None:
            record = self.cache.get(key)
            if record is not None:
                output = tool.Output.from_record(*record)
                self._memory_put(key, output)
        return output

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
            ctx.log.info(
                "tool_call",
                tool=name,
                step=ctx.step,
                args=params_json,
                seconds=round(seconds, 4),
                cache_hit=cache_hit,
                **outcome,
            )
            return seconds

        try:
            params = self.validate(tool, args)
            params_json = params.model_dump(mode="json")
            key = None
            if tool.cacheable:
                key = make_key(
                    tool.name,
                    tool.version,
                    tool.fingerprint(),
                    tool.key_inputs(ws, params),
                    tool.key_args(params),
                )
            result, cache_hit = await self._run(tool, ws, params, key)
        except Exception as exc:
            seconds = trace(False, error=redact_text(f"{type(exc).__name__}: {exc}"))
            ctx.costs.record(name, seconds=seconds, error=True)
            raise
        tool.apply(ws, result)
        seconds = trace(cache_hit, result=result.summary())
        # A cache hit spent no tokens or money this time.
        ctx.costs.record(
            name,
            seconds=seconds,
            cache_hit=cache_hit,
            tokens_in=0 if cache_hit else int(getattr(result, "tokens_in", 0)),
            tokens_out=0 if cache_hit else int(getattr(result, "tokens_out", 0)),
            usd=0.0 if cache_hit else float(getattr(result, "usd", 0.0)),
        )
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
            self._memory_put(key, output)
            self.computed[tool.name] = self.computed.get(tool.name, 0) + 1
            return output, False
        finally:
            del self._inflight[key]
            done.set()
