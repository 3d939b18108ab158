"""The machine side of a speed measurement: device, its name, peak memory, wall clocks."""

from __future__ import annotations

import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.runtime import default_device
from tools.accel import device_type, synchronize
from tools.errors import ConfigError

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a CUDA device is visible, else ``cpu``; others are checked.

    Raises:
        ConfigError: CUDA asked for but not available, or an unknown device string.
    """
    if device == "auto":
        return default_device()
    try:
        kind = device_type(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda, cuda:N or auto") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible here; use --device cpu")
    return device


def device_name(device: str) -> str:
    """``NVIDIA H100 80GB HBM3`` or ``<cpu model>, N cores (T torch threads)``."""
    if device_type(device) == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads)"


@dataclass(frozen=True)
class PeakMemory:
    """A peak-memory reading and exactly what it is.

    Attributes:
        bytes: the peak.
        what: ``cuda_max_allocated`` (``torch.cuda.max_memory_allocated``: tensors only, not
            the caching allocator's reserve or the CUDA context; reset before the measured
            part), ``process_peak_rss`` (the process's resident-set high-water mark, reset
            to the current RSS just before the measured part: it includes the loaded models
            and libraries) or ``process_max_rss_since_start`` (it could not be reset: the
            peak of the whole process so far).
    """

    bytes: int
    what: str

    def describe(self) -> str:
        texts = {
            "cuda_max_allocated": "CUDA max allocated (torch tensors; peak reset before)",
            "process_peak_rss": "process peak RSS (VmHWM reset before; includes loaded models)",
            "process_max_rss_since_start": "process max RSS since start (could not reset the peak)",
        }
        return f"{self.bytes / 2**30:.2f} GiB {texts.get(self.what, self.what)}"


def _reset_rss_peak() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # Linux: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def _rss_peak_bytes() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass
class MemoryWatch:
    """Filled in when the ``with peak_memory(...)`` block ends."""

    peak: PeakMemory | None = None


@contextmanager
def peak_memory(device: str) -> Iterator[MemoryWatch]:
    """Measure the peak memory of the block (see :class:`PeakMemory` for what is measured)."""
    watch = MemoryWatch()
    cuda = device_type(device) == "cuda"
    if cuda:
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    reset = not cuda and _reset_rss_peak()
    try:
        yield watch
    finally:
        if cuda:
            synchronize(device)
            watch.peak = PeakMemory(int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated")
        else:
            rss = _rss_peak_bytes() if reset else None
            if rss is not None:
                watch.peak = PeakMemory(rss, "process_peak_rss")
            else:  # ru_maxrss is KiB on Linux
                maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
                watch.peak = PeakMemory(int(maxrss), "process_max_rss_since_start")


@dataclass
class Stopwatch:
    seconds: float = 0.0


@contextmanager
def timed(device: str) -> Iterator[Stopwatch]:
    """Wall seconds of the block, waiting for the device's queued work at both ends."""
    watch = Stopwatch()
    synchronize(device)
    start = time.perf_counter()
    try:
        yield watch
    finally:
        synchronize(device)
        watch.seconds = time.perf_counter() - start
