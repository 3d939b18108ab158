"""Tool-output memoization: explicit keys, npz/JSON values, no pickle."""

from cache.codec import CorruptEntry, decode, encode
from cache.keys import canonical_json, make_key
from cache.store import ToolCache, default_cache_dir

__all__ = ["CorruptEntry", "ToolCache", "canonical_json", "decode", "default_cache_dir", "encode", "make_key"]
