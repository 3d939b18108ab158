"""What ``refseg bench frontier-check`` can run, light enough for its parser to import
(:mod:`bench.benchmarks.frontier_check` itself imports the test doubles)."""

DEFAULT_PAIRS = ((0.5, 0.2), (0.3, 0.1), (0.7, 0.4))
SETUPS = {"loop-rules": ("loop", "rules"), "loop-vlm": ("loop", "vlm"), "ground": ("ground", "rules")}
