"""The result of ``bench speed``: one value, printed as a table and written as JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.benchmarks.speed.machine import PeakMemory
from bench.benchmarks.speed.rank_floor import FloorRow
from bench.benchmarks.speed.reference import Agreement

STAGE_LABELS = {
    "encode": "SAM encode",
    "decode": "SAM decode",
    "postprocess": "SAM post-process",
    "rank_image": "rank: image side",
    "rank_text": "rank: text side",
}


@dataclass(frozen=True)
class ImageRow:
    """One image of the timed pass (``propose_seconds`` is None when images ran concurrently)."""

    name: str
    height: int
    width: int
    proposals: int
    propose_seconds: float | None


@dataclass(frozen=True)
class ReferenceSummary:
    """The official generator beside ``sam_propose``, per image on average."""

    official_seconds_per_image: float
    ours_seconds_per_image: float
    agreements: list[Agreement]
    peak_memory: PeakMemory | None

    @property
    def speedup(self) -> float:
        """Official seconds over ours (above 1: ``sam_propose`` is faster)."""
        ours = self.ours_seconds_per_image
        return self.official_seconds_per_image / ours if ours else math.nan


@dataclass
class SpeedReport:
    """Everything one ``bench speed`` run measured.

    Attributes:
        options: the options, as JSON.
        device: the torch device; ``device_name`` says what it is.
        torch_version: ``torch.__version__``.
        points_per_batch: the prompt batch size used (resolved per device when not given).
        images: the timed pass, per image.
        stage_seconds: seconds per image of each stage (encode, decode, postprocess,
            rank_image, rank_text), averaged over the images.
        wall_seconds: wall seconds of the timed pass (all images, propose and rank).
        peak_memory: peak memory of the timed pass (see :class:`PeakMemory`).
        warmup_seconds: the untimed first run (compilation included), when there was one.
        reference: the official generator beside ours (``--reference``).
        rank_floor: ``clip_rank`` against the floor (``--rank-floor``).
        notes: anything that qualifies the numbers.
    """

    options: dict[str, Any]
    device: str
    device_name: str
    torch_version: str
    points_per_batch: int
    images: list[ImageRow]
    stage_seconds: dict[str, float]
    wall_seconds: float
    peak_memory: PeakMemory | None
    warmup_seconds: float | None = None
    reference: ReferenceSummary | None = None
    rank_floor: list[FloorRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def seconds_per_image(self) -> float:
        return self.wall_seconds / max(1, len(self.images))

    @property
    def images_per_second(self) -> float:
        return len(self.images) / self.wall_seconds if self.wall_seconds else math.nan

    def as_json(self) -> dict[str, Any]:
        """The report as JSON-able values, derived figures included."""
        out = asdict(self)
        out["seconds_per_image"] = self.seconds_per_image
        out["images_per_second"] = self.images_per_second
        if self.peak_memory is not None:
            out["peak_memory"]["description"] = self.peak_memory.describe()
        if self.reference is not None:
            out["reference"]["speedup"] = self.reference.speedup
            for row, agreement in zip(out["reference"]["agreements"], self.reference.agreements, strict=True):
                row["agree"] = agreement.agree
        for row, floor in zip(out["rank_floor"], self.rank_floor, strict=True):
            row["ratio"] = floor.ratio
        return out


def write_speed_json(report: Any, path: Path) -> Path:
    """Write the report as JSON (NaN as null); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_no_nan(report.as_json()), indent=2) + "\n")
    return path


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_nan(v) for v in value]
    return value


def _header(r: SpeedReport) -> list[str]:
    o = r.options
    sizes = ", ".join(f"{i.name} {i.width}x{i.height}" for i in r.images)
    return [
        f"refseg bench speed on {r.device} ({r.device_name}), torch {r.torch_version}",
        f"SAM {o['sam_model']} + CLIP {o['clip_model']} ({o['weights']} weights), {o['precision']}"
        f"{', compiled' if o['compile'] else ''}; {o['points_per_side']}x{o['points_per_side']} points, "
        f"{r.points_per_batch} per batch, encoder batch {o['encoder_batch']}, {o['thresholds']} thresholds",
        f"{len(r.images)} image(s): {sizes}",
    ]


def _stages(r: SpeedReport) -> list[str]:
    props = sum(i.proposals for i in r.images) / max(1, len(r.images))
    lines = [f"{'stage':<22}{'s/image':>10}"]
    for name, label in STAGE_LABELS.items():
        extra = f"   ({props:.1f} candidates/image)" if name == "rank_image" else ""
        lines.append(f"{label:<22}{r.stage_seconds.get(name, 0.0):>10.3f}{extra}")
    lines.append(f"{'total (wall)':<22}{r.seconds_per_image:>10.3f}   images/s {r.images_per_second:.4f}")
    if r.peak_memory is not None:
        lines.append(f"peak memory: {r.peak_memory.describe()}")
    if r.warmup_seconds is not None:
        lines.append(f"warm-up (untimed, compilation included): {r.warmup_seconds:.2f} s")
    return lines


def _reference(ref: ReferenceSummary) -> list[str]:
    lines = [
        "",
        "reference: segment-anything SamAutomaticMaskGenerator, same model object and images (fp32)",
        f"{'propose s/image':<22}{'refseg':>10}{'official':>10}{'ratio':>10}",
        f"{'':<22}{ref.ours_seconds_per_image:>10.3f}{ref.official_seconds_per_image:>10.3f}"
        f"{ref.speedup:>9.2f}x (official / refseg)",
    ]
    for a in ref.agreements:
        if not a.compared:  # e.g. random weights under the default thresholds: no mask passes
            lines.append(f"masks agree, {a.thresholds} thresholds: not compared (0 masks on either side)")
            continue
        verdict = "yes" if a.agree else "no"
        ious = f"; best IoU min {a.min_iou:.4f}, mean {a.mean_iou:.4f}" if a.ours else ""
        lines.append(
            f"masks agree, {a.thresholds} thresholds: {verdict} ({a.exact} of {a.ours} refseg masks "
            f"bit-identical, {a.official} official masks compared{ious})"
        )
    if ref.peak_memory is not None:
        lines.append(f"official peak memory: {ref.peak_memory.describe()}")
    return lines


def _floor(rows: list[FloorRow]) -> list[str]:
    lines = [
        "",
        "rank at the compute floor (floor = prompts at model input size + 1 image forward + 1 text forward)",
        f"{'mode':<8}{'cands':>6}{'floor s':>10}{'(prep s)':>10}{'clip_rank s':>13}{'ratio':>8}"
        f"{'loop s':>10}{'loop/floor':>12}  scores equal",
    ]
    for f in rows:
        loop = f"{f.loop_seconds:>10.3f}{f.loop_seconds / f.floor_seconds:>11.2f}x" if f.loop_seconds else ""
        loop = loop or f"{'-':>10}{'-':>12}"
        lines.append(
            f"{f.mode:<8}{f.candidates:>6}{f.floor_seconds:>10.3f}{f.prepare_seconds:>10.3f}"
            f"{f.clip_rank_seconds:>13.3f}{f.ratio:>7.2f}x{loop}  {'yes' if f.scores_equal else 'NO'}"
        )
    if rows:
        lines.append(f"(medians of {rows[0].repeats} alternating runs; the loop ran once)")
    return lines


def format_speed_table(report: SpeedReport) -> str:
    """The report as the table ``bench speed`` prints."""
    lines = [*_header(report), "", *_stages(report)]
    if report.reference is not None:
        lines += _reference(report.reference)
    if report.rank_floor:
        lines += _floor(report.rank_floor)
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)
