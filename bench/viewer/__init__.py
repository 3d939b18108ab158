"""``refseg view``: a run and trace viewer in the browser.

:func:`create_app` builds the ASGI app for :class:`ViewerOptions`; :func:`serve` runs it
with uvicorn. Pages are rendered on the server from the run folders as they are on disk
(a run still being written shows its new lines on reload).
"""

from bench.viewer.app import create_app
from bench.viewer.options import ViewerOptions
from bench.viewer.runs import ViewerError
from bench.viewer.server import serve

__all__ = ["ViewerError", "ViewerOptions", "create_app", "serve"]
