"""Engines: what runs a bench invocation's episodes (local anyio tasks, or a Ray actor pool)."""
