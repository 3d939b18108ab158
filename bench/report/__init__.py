"""The report pipeline: run folders read back, compared and written up.

``summary.json`` (:mod:`bench.summary`) -> :mod:`bench.report.run_reader` (a run folder as the
reports read it) -> :mod:`bench.report.tables` and :mod:`bench.report.figures` ->
:mod:`bench.report.markdown` (``report.md`` and the terminal tables); :mod:`bench.report.paired`
compares two runs over the same examples and :mod:`bench.report.cases` draws the galleries of
where they differ. This package file imports nothing, so importing one module stays cheap.
"""
