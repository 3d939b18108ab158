"""``refseg bench speed``: how fast propose + rank run here, stage by stage.

Library API (no argparse): :class:`SpeedOptions` -> :func:`run_speed` -> :class:`SpeedReport`,
printed by :func:`format_speed_table` and written by :func:`write_speed_json`.
"""

from bench.speed.options import SpeedOptions
from bench.speed.report import SpeedReport, format_speed_table, write_speed_json
from bench.speed.run import run_speed

__all__ = ["SpeedOptions", "SpeedReport", "format_speed_table", "run_speed", "write_speed_json"]
