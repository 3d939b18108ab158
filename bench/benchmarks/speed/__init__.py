"""``refseg bench speed``: how fast propose + rank run here, stage by stage.

Library API (no argparse): :class:`bench.benchmarks.speed.options.SpeedOptions` ->
:func:`bench.benchmarks.speed.run.run_speed` -> :class:`bench.benchmarks.speed.report.SpeedReport`, printed by
:func:`bench.benchmarks.speed.report.format_speed_table` and written by
:func:`bench.benchmarks.speed.report.write_speed_json`. This package file imports nothing, so the CLI can
read :class:`SpeedOptions` (torch-free) without loading torch.
"""
