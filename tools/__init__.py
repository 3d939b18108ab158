"""Tools: the protocol, the registry, and the built-in SAM, CLIP and refine tools."""
