"""The cost-quality frontier: every guard threshold from one run at 1/1, and the guard's calibration.

- :mod:`bench.frontier.source` reads a run (and refuses one the replay cannot use);
- :mod:`bench.frontier.replay` turns each recorded episode into its outcomes by where the
  guard stops it (why that is exact for ``loop`` and ``ground``: its docstring);
- :mod:`bench.frontier.points` and :mod:`bench.frontier.frontier` evaluate the grid, the
  ends, the marks and the Pareto front; :mod:`bench.frontier.calibration` the reliability
  of ``conf`` and ``gap`` per ranker;
- :mod:`bench.frontier.report` writes ``frontier.png``, ``calibration.png`` and
  ``frontier.json`` (``refseg bench frontier``) and the reports' sections;
- :mod:`bench.frontier.pick` chooses thresholds on some images and scores them on others
  (``refseg bench suite --pick-thresholds``).
"""
