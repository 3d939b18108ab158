"""``python -m bench.chaos [OPTIONS]``: the same as ``refseg bench chaos [OPTIONS]``."""

from __future__ import annotations

import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "chaos", *sys.argv[1:]]))
