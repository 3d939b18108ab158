"""Serving the viewer with uvicorn: ``serve(options)`` blocks until Ctrl-C."""

from __future__ import annotations

import sys
import threading

from bench.viewer.app import Viewer, create_app
from bench.viewer.options import ViewerOptions
from bench.viewer.runs import RunFolder


def preload(viewer: Viewer) -> threading.Thread:
    """Load the runs' data sets in the background, so the first example page is quick."""

    def work() -> None:
        for run in (viewer.a, viewer.b):
            if isinstance(run, RunFolder):
                viewer.images.examples(run.data_spec())

    thread = threading.Thread(target=work, name="refseg-view-preload", daemon=True)
    thread.start()
    return thread


def serve(options: ViewerOptions) -> None:
    """Serve the runs of ``options`` at ``http://HOST:PORT/`` until interrupted.

    Raises:
        ViewerError: a folder cannot be shown (see :func:`bench.viewer.app.create_app`).
    """
    import uvicorn  # only the server needs it; the app and its tests do not

    app = create_app(options)
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
