"""What ``refseg view`` serves, and where: the typed options the CLI builds once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.viewer.runs import ViewerError

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class ViewerOptions:
    """Options of the viewer.

    Attributes:
        run: a bench run folder (``refseg bench run --out``) or a ``refseg segment`` output.
        run_b: a second bench run to compare with (improved / degraded, side-by-side episodes).
        host: interface to bind; the loopback by default, so nothing outside this machine
            can reach the pages. Another address serves every host name (``--host 0.0.0.0``
            is a deliberate choice to share the run on a network).
        port: TCP port (0: any free port).
        preload: load the runs' data sets in the background at start, so the first example
            page does not wait for them.
    """

    run: Path
    run_b: Path | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    preload: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ViewerError(f"--port must be between 0 and 65535, got {self.port}")
        if not self.host.strip():
            raise ViewerError("--host must name an interface, e.g. 127.0.0.1")
        for path in (self.run, self.run_b):
            if path is not None and not Path(path).is_dir():
                raise ViewerError(f"{path}: no such folder; pass the --out folder of a bench run or segment")

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def allowed_hosts(self) -> list[str]:
        """Host headers the app answers (a DNS-rebinding page gets 400 on the loopback)."""
        if not self.loopback:
            return ["*"]
        return ["127.0.0.1", "localhost", "[::1]", "::1"]
