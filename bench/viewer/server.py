"""Serving the viewer with uvicorn: ``serve(options)`` blocks until Ctrl-C."""

from __future__ import annotations

import gc
import socket
import sys
import threading

from bench.viewer.app import Viewer, create_app
from bench.viewer.options import ViewerOptions
from bench.viewer.runs import RunFolder, ViewerError


def preload(viewer: Viewer) -> threading.Thread:
    """Load the runs' data sets in the background, so the first example page is quick."""

    def work() -> None:
        for run in (viewer.a, viewer.b):
            if isinstance(run, RunFolder):
                viewer.images.examples(run.data_spec())

    thread = threading.Thread(target=work, name="refseg-view-preload", daemon=True)
    thread.start()
    return thread


def settle_heap() -> None:
    """Move what the server read at start (thousands of records, kept for its whole life) out
    of the cyclic garbage collector's way: without it, the first full collection after a
    reload pauses a request by ~100 ms on a 5,000-example run (``python -m
    bench.benchmarks.viewer``). For a process that serves until it exits, not for tests."""
    gc.collect()
    gc.freeze()


def check_port(host: str, port: int) -> None:
    """Raise a one-line :class:`ViewerError` when ``host:port`` cannot be listened on.

    Checked before uvicorn starts, which would only log the failure and exit.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ViewerError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port or --host"
            ) from None


def serve(options: ViewerOptions) -> None:
    """Serve the runs of ``options`` at ``http://HOST:PORT/`` until interrupted.

    Raises:
        ViewerError: a folder cannot be shown (see :func:`bench.viewer.app.create_app`), or
            the port is taken.
    """
    import uvicorn  # only the server needs it; the app and its tests do not

    app = create_app(options)
    settle_heap()
    check_port(options.host, options.port)
    if options.preload:
        preload(app.state.viewer)
    host = f"[{options.host}]" if ":" in options.host else options.host
    print(f"refseg view: http://{host}:{options.port}/  (Ctrl-C stops)", file=sys.stderr)
    if not options.loopback:
        print(
            f"refseg view: bound to {options.host}: anyone who can reach this machine can read these runs",
            file=sys.stderr,
        )
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning")
