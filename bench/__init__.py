"""Benchmarks on RefCOCO-M and generated scenes, reports, and the refseg CLI."""
