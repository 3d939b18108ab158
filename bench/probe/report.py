"""What the probe found: the facts, the flags they suggest, the lines it prints, its JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.probe.checks import Outcome
from bench.probe.fit import FITS, Fit


@dataclass
class ProbeReport:
    """Everything :func:`bench.probe.run.probe_endpoint` measured on one endpoint.

    Attributes:
        base_url, model: where it asked (the URL without credentials), and which model.
        model_source: ``flag`` (``--vlm-model`` or ``REFSEG_VLM_MODEL``), ``/models`` (the
            first model the endpoint lists) or ``default``.
        models: what ``GET /models`` listed (``None``: the endpoint has no such list).
        checks: each check's outcome by name (``text``, ``image``, ``locate_N``,
            ``native_tools``, ``text_tools``, ``json_schema``).
        fit: the coordinate fit (``None`` when no image was taken).
        image_input: the endpoint took the pictures and the answers show the model saw them.
        requests, seconds: chat requests sent (plus one ``GET /models``) and wall time.
        warnings: what the user should know (one line each).
    """

    base_url: str
    model: str
    model_source: str
    models: list[str] | None
    checks: dict[str, Outcome] = field(default_factory=dict)
    fit: Fit | None = None
    image_input: bool = False
    requests: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def called(self, name: str) -> bool:
        out = self.checks.get(name)
        return bool(out is not None and out.facts.get("called"))

    @property
    def tool_calls(self) -> str | None:
        """``native`` when the server returns tool calls, else ``text`` when text calls parse."""
        return "native" if self.called("native_tools") else "text" if self.called("text_tools") else None

    @property
    def json_schema(self) -> bool:
        """The server honoured ``response_format`` (the reply had the schema's shape)."""
        out = self.checks.get("json_schema")
        return bool(out is not None and out.ok and out.facts.get("valid") and not out.facts.get("refused"))

    def latency_s(self) -> dict[str, float | None]:
        """Seconds of the text request, the mean of the image requests, the mean of all."""

        def mean(names: list[str]) -> float | None:
            values = [o.reply.latency_s for n, o in self.checks.items() if n in names and o.reply is not None]
            return round(sum(values) / len(values), 3) if values else None

        images = [n for n in self.checks if n == "image" or n.startswith("locate")]
        return {"text": mean(["text"]), "image": mean(images), "mean": mean(list(self.checks))}

    def tokens_per_image(self) -> int | None:
        """Prompt tokens the first picture added: the image request minus the same text alone."""
        text, image = self.checks.get("text"), self.checks.get("image")
        if text is None or image is None or text.reply is None or image.reply is None:
            return None
        extra = image.reply.tokens_in - text.reply.tokens_in
        return extra if extra > 0 and text.reply.tokens_in > 0 else None

    def reasoning(self) -> dict[str, Any]:
        """Whether any reply carried reasoning (think blocks or a reasoning field), and its tokens."""
        replies = [o.reply for o in self.checks.values() if o.reply is not None]
        thinking = [r for r in replies if r.reasoning or r.reasoning_tokens]
        example = next((r.reasoning[:120] for r in thinking if r.reasoning), "")
        tokens = sum(r.reasoning_tokens for r in replies)
        return {"present": bool(thinking), "replies": len(thinking), "tokens": tokens, "example": example}

    def suggested(self) -> list[str]:
        """The flags to use with this endpoint."""
        flags: list[str] = []
        if self.model_source == "/models":
            flags += ["--vlm-model", self.model]
        if self.fit is not None and self.fit.view_grid is not None:
            flags += ["--vlm-profile", "qwen2.5-vl"]
        if self.fit is not None and self.fit.coords is not None and self.fit.iou >= 0.5:
            flags += ["--vlm-coords", self.fit.coords]
        if self.tool_calls is not None:
            flags += ["--vlm-tool-calls", self.tool_calls]
        if self.json_schema:
            flags.append("--vlm-json-schema")
        return flags

    def as_dict(self) -> dict[str, Any]:
        """The JSON the probe writes (``--json``)."""
        fit = self.fit
        return {
            "base_url": self.base_url,
            "model": self.model,
            "model_source": self.model_source,
            "models": self.models,
            "image_input": self.image_input,
            "coords": fit.coords if fit is not None and fit.iou >= 0.5 else None,
            "coords_fit": fit.best if fit is not None else None,
            "coords_iou": fit.iou if fit is not None else None,
            "coords_scores": fit.scores if fit is not None else {},
            "view_grid": fit.view_grid if fit is not None else None,
            "tool_calls": self.tool_calls,
            "native_tool_calls": self.called("native_tools"),
            "text_tool_calls": self.called("text_tools"),
            "json_schema": self.json_schema,
            "reasoning": self.reasoning(),
            "latency_s": self.latency_s(),
            "tokens_per_image": self.tokens_per_image(),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "warnings": self.warnings,
            "suggested": " ".join(self.suggested()),
            "checks": {name: out.as_dict() for name, out in self.checks.items()},
        }

    def lines(self) -> list[str]:
        """What ``refseg vlm probe`` prints."""
        d = self.as_dict()
        listed = "no /models list" if self.models is None else f"{len(self.models)} listed"
        out = [f"endpoint     {self.base_url}  model {self.model} ({self.model_source}; {listed})"]
        out.append(f"text reply   {_status(self.checks.get('text'))}")
        per_image = d["tokens_per_image"]
        tokens = f", {per_image} prompt tokens per image" if per_image else ""
        out.append(f"image input  {self._image_text(tokens)}")
        out.append(f"coordinates  {self._coords_text()}")
        native_out = self.checks.get("native_tools")
        why = (
            "no tool_calls in the reply" if native_out is not None and native_out.ok else _status(native_out)
        )
        native = "yes" if d["native_tool_calls"] else f"no ({why})"
        out.append(f"tool calls   native: {native}; text: {'yes' if d['text_tool_calls'] else 'no'}")
        schema = self.checks.get("json_schema")
        refused = schema is not None and schema.facts.get("refused")
        honoured = "honoured" if d["json_schema"] else "refused" if refused else "not honoured"
        out.append(f"json schema  {honoured}")
        r = d["reasoning"]
        thought = (
            f"yes, in {r['replies']} replies, {r['tokens']} reasoning tokens" if r["present"] else "none"
        )
        out.append(f"reasoning    {thought}")
        lat = d["latency_s"]
        out.append(f"latency      text {lat['text']} s, image {lat['image']} s; {self.requests} requests")
        out += [f"warning: {w}" for w in self.warnings]
        out.append(f"suggested: {d['suggested']}")
        return out

    def _image_text(self, tokens: str) -> str:
        """Whether the model saw the pictures, in words (a request that went through is not
        the same as a model that looked)."""
        image = self.checks.get("image")
        if image is None:
            return "not checked"
        if not image.ok:
            return f"NO: the request with a picture failed: {(image.error or '')[:240]}"
        if self.image_input:
            return f"yes: {_status(image)}{tokens}"
        return (
            f"NO: the pictures were taken ({_status(image)}) but no answer shows the model saw them "
            "(no colour named, no box fits)"
        )

    def _coords_text(self) -> str:
        """The coordinate convention found, or why none was."""
        if self.fit is None:
            return "not checked: the endpoint took no picture"
        if self.fit.best is None:
            return "not determined: no answer held a box"
        scores = "  ".join(f"{k} {v:.2f}" for k, v in self.fit.scores.items())
        found = f"{self.fit.best} (mean IoU {self.fit.iou:.2f}); fit: {scores}"
        return found if self.fit.iou >= FITS else f"not determined: no convention fits; best {found}"


def _status(out: Outcome | None) -> str:
    if out is None:
        return "not checked"
    if not out.ok:
        return f"failed: {(out.error or '')[:240]}"
    assert out.reply is not None
    return f"ok {out.reply.latency_s:.2f} s, {out.reply.tokens_in} tokens in / {out.reply.tokens_out} out"
