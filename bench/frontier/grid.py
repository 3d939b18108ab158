"""The threshold grid: which ``(tau_conf, tau_gap)`` pairs the frontier evaluates.

``--grid STEP`` (e.g. ``0.05``) takes ``0, STEP, 2*STEP, ..., 1`` on both axes; ``--grid
C1,C2,...:G1,G2,...`` names the values of each axis. The corners ``0`` (the guard always
passes: one-shot) and ``1`` (it never does: always ask) are always on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.errors import InputError

DEFAULT_STEP = 0.05
MAX_VALUES = 201  # per axis: 0.005 steps at the finest


def _values(text: str, what: str) -> tuple[float, ...]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--grid: {what} values must be numbers, got {text!r}") from None
    bad = [v for v in values if not 0.0 <= v <= 1.0]
    if bad:
        raise InputError(f"--grid: thresholds lie in [0, 1], got {bad[0]:g}")
    return _with_corners(values)


def _with_corners(values: list[float]) -> tuple[float, ...]:
    out = sorted({round(v, 6) for v in [0.0, 1.0, *values]})
    if len(out) > MAX_VALUES:
        raise InputError(f"--grid: at most {MAX_VALUES} values per axis, got {len(out)}")
    return tuple(out)


@dataclass(frozen=True)
class Grid:
    """The values of each threshold; the pairs are their product."""

    conf: tuple[float, ...]
    gap: tuple[float, ...]

    @classmethod
    def step(cls, step: float = DEFAULT_STEP) -> Grid:
        """``0, step, ..., 1`` on both axes.

        Raises:
            InputError: a step outside ``(0, 1]`` or finer than :data:`MAX_VALUES` allows.
        """
        if not 0.0 < step <= 1.0:
            raise InputError(f"--grid: a step lies in (0, 1], got {step:g}")
        n = int(np.floor(1.0 / step + 1e-9))
        values = _with_corners([min(1.0, i * step) for i in range(n + 1)])
        return cls(values, values)

    @classmethod
    def parse(cls, text: str | None) -> Grid:
        """``None`` (the default step), ``STEP``, or ``C1,C2,...:G1,G2,...``.

        Raises:
            InputError: what the text gets wrong, in one line.
        """
        if text is None:
            return cls.step()
        if ":" in text:
            conf, _, gap = text.partition(":")
            return cls(_values(conf, "tau_conf"), _values(gap, "tau_gap"))
        try:
            step = float(text)
        except ValueError:
            raise InputError(
                f"--grid takes a step (0.05) or the values of each axis (0,0.5,1:0,0.2,1), got {text!r}"
            ) from None
        return cls.step(step)

    def pairs(self) -> list[tuple[float, float]]:
        """Every ``(tau_conf, tau_gap)``, tau_conf first."""
        return [(c, g) for c in self.conf for g in self.gap]

    def describe(self) -> str:
        return f"{len(self.conf)} x {len(self.gap)} thresholds (tau_conf x tau_gap)"
