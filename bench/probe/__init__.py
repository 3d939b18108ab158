"""``refseg vlm probe``: what an OpenAI-compatible VLM endpoint can do, and the flags to use.

:func:`bench.probe.run.probe_endpoint` sends a bounded set of requests (:mod:`bench.probe.checks`)
with generated pictures (:mod:`bench.probe.images`), fits the boxes it gets against every
coordinate convention (:mod:`bench.probe.fit`) and returns a :class:`bench.probe.report.ProbeReport`.
"""
