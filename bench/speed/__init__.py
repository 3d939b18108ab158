"""``refseg bench speed``: how fast propose + rank run here, stage by stage.

Library API (no argparse): :class:`bench.speed.options.SpeedOptions` ->
:func:`bench.speed.run.run_speed` -> :class:`bench.speed.report.SpeedReport`, printed by
:func:`bench.speed.report.format_speed_table` and written by
:func:`bench.speed.report.write_speed_json`. This package file imports nothing, so the CLI can
read :class:`SpeedOptions` (torch-free) without loading torch.
"""
