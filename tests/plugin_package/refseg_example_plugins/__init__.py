"""Example refseg-loop plugins (see ``pyproject.toml``'s entry points)."""
