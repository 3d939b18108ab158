"""Offline toolset: a classical region proposer and an attribute ranker; no weights needed."""
