"""The model configuration of every block of a record a current writer writes whole."""

from __future__ import annotations

from pydantic import ConfigDict

# ``summary.json`` and ``config.json`` are written by ``model_dump``: every field of every block
# is there, so their serialization schema requires each (``refseg bench schema``), while readers
# still take older files (validation defaults what they lack) and keep fields they do not know.
WRITTEN_BLOCK = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)

__all__ = ["WRITTEN_BLOCK"]
