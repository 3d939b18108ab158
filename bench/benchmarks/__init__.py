"""Benchmark-only code: the measuring drivers behind ``refseg bench engines|viewer|ground|speed``.

Each prints figures and none is on a product path: :mod:`bench.benchmarks.engines` (the engines'
throughput and same-answers check), :mod:`bench.benchmarks.viewer` (time to first byte of the
run page), :mod:`bench.benchmarks.ground` (grounded prompts against the oracle VLM) and
:mod:`bench.benchmarks.speed` (propose + rank per stage). Their command-line modules stay in
:mod:`bench.cli`. This package file imports nothing, so importing one driver stays cheap.
"""
