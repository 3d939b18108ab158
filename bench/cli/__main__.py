"""``python -m bench.cli ARGS``: the same as ``refseg ARGS``."""

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
