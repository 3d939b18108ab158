"""Probe one endpoint: the checks in order, the fit, the warnings, the exit code.

    refseg vlm probe --vlm-base-url URL [--vlm-model M] [--json PATH]

Under a minute (:data:`bench.probe.options.DEADLINE_S`) and at most :data:`bench.probe.checks.MAX_REQUESTS`
chat requests plus one ``GET /models``. Exit codes: 0; 7 (:data:`NO_IMAGES`) when the endpoint
cannot take images (or its answers show no sign of seeing them); a rejected key or unknown
model stops it with exit 6, an unreachable endpoint with exit 5 (one line each).
"""

from __future__ import annotations

import json
import os
import time

import anyio

from agent.vlm import VLMConfig
from agent.vlm_config import MODEL_ENV
from bench.probe.checks import Prober
from bench.probe.fit import fit
from bench.probe.images import probe_images
from bench.probe.options import NO_IMAGES, ProbeOptions
from bench.probe.report import ProbeReport
from bench.runtime import public_url
from tools.errors import VLMError

UNREACHABLE = ("connection", "timeout")


async def probe_endpoint(options: ProbeOptions) -> ProbeReport:
    """Run every check against the endpoint (see the module docstring).

    Raises:
        ConfigError: no usable base URL.
        VLMAuthError: the key is rejected or the model unknown.
        VLMError: the endpoint cannot be reached.
    """
    start = time.monotonic()
    config = VLMConfig.from_env(base_url=options.base_url, model=options.model)
    prober = Prober(config, options.deadline_s)
    models = await prober.models()
    source = "flag" if options.model or os.environ.get(MODEL_ENV) else "default"
    if source == "default" and models:
        config, source = config.with_(model=models[0]), "/models"
        prober.use_model(models[0])
    report = ProbeReport(public_url(config.base_url), config.model, source, models)
    text = report.checks["text"] = await prober.text()
    if not text.ok and text.facts.get("kind") in UNREACHABLE:
        raise VLMError(f"cannot reach the VLM at {config.shown_url}: {text.error}")
    await _images(prober, report)
    report.checks["native_tools"] = await prober.native_tools()
    report.checks["text_tools"] = await prober.text_tools()
    report.checks["json_schema"] = await prober.json_schema()
    report.requests, report.seconds = prober.requests, time.monotonic() - start
    _warn(report, prober.skipped)
    return report


async def _images(prober: Prober, report: ProbeReport) -> None:
    """The colour question, then the boxes and their fit (when the picture was taken)."""
    images = probe_images()
    colour = report.checks["image"] = await prober.colour(images[0])
    if not colour.ok:
        report.warnings.append(f"the endpoint did not take an image: {colour.error}")
        return
    answers = []
    for i, image in enumerate(images):
        report.checks[f"locate_{i}"], answer = await prober.locate(image)
        answers.append(answer)
    report.fit = fit(answers)
    report.warnings += report.fit.warnings
    saw = bool(colour.facts.get("named_colour")) or report.fit.iou >= 0.5
    report.image_input = saw
    if not saw:
        report.warnings.append(
            "the endpoint took the images but the answers show no sign the model saw them (no "
            "colour named, no box fits): is it a vision model?"
        )


def _warn(report: ProbeReport, skipped: list[str]) -> None:
    if skipped:
        report.warnings.append(f"not checked, out of time: {', '.join(dict.fromkeys(skipped))}")
    if report.tool_calls is None:
        report.warnings.append(
            "no tool call came back, natively or as text: --controller agent will not work here "
            "(ground and loop do not need tool calls)"
        )
    elif report.tool_calls == "text":
        report.warnings.append(
            "the server returned no native tool calls (vLLM: start it with --enable-auto-tool-choice "
            "--tool-call-parser hermes; llama.cpp: --jinja); text tool calls parse"
        )


def run_probe(options: ProbeOptions) -> int:
    """Probe, print the report (last line ``suggested: ...``), write the JSON; the exit code."""
    report = anyio.run(probe_endpoint, options)
    for line in report.lines():
        print(line)
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0 if report.image_input else NO_IMAGES
