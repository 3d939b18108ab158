"""Test doubles at the network edge: scripted VLM servers that answer as real models do."""
