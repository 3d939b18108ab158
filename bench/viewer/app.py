"""The viewer's ASGI app (Starlette): server-rendered pages, PNG endpoints, packaged assets.

Routes (RUN is ``a``, RUN_B is ``b``; examples are named by ``id``, segment results by
their number; no route takes a path):

- ``/``: the run page (summary and examples table), or a segment folder's results.
- ``/example?id=ID``: one example, with RUN_B's episode beside it.
- ``/img/{a|b}/{image|gt|pred}.png?id=ID``: the image and transparent mask layers.
- ``/img/{a|b}/candidate.png?id=ID&step=I&cand=J``: a recorded ranking candidate.
- ``/img/{a|b}/vlm.png?id=ID&event=K&part=J``: an image a VLM call recorded it was shown.
- ``/plot/{a|b}/{frontier|calibration}.png``: the run's guard figures (:mod:`bench.viewer.guard`).
- ``/result/{n}`` and ``/result/{n}/{overlay|mask}.png``: a segment result;
  ``/result/{n}/candidate.png?step=I&cand=J`` and ``/result/{n}/vlm.png?event=K&part=J``: its
  ranking candidates and VLM images.
- ``/static/...``: CSS and JS from the package.

Handlers are coroutines: they run on the event loop one at a time, so the folders' state
needs no locks between requests (the live summary is computed on a copy, in a thread).
Every response carries a strict Content-Security-Policy (scripts and styles from this
origin only), ``nosniff`` and ``no-referrer``; on the loopback only loopback host names are
answered, so a web page elsewhere cannot read the runs through DNS rebinding.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import bench.viewer.pages as pages
from bench.viewer.draw import MAX_IMAGE_FILE_BYTES, Drawings, vlm_image
from bench.viewer.guard import GuardView, GuardViews
from bench.viewer.images import DatasetImages, PictureTooLarge
from bench.viewer.live_summary import Summaries
from bench.viewer.options import ViewerOptions
from bench.viewer.runs import RunFolder, ViewerError
from bench.viewer.segment_folder import SegmentFolder, SegmentResult
from bench.viewer.template_filters import FILTERS, MAX_PAGE_CHARS, shown

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def open_folder(path: Path, name: str | None = None) -> RunFolder | SegmentFolder:
    """A bench run folder, or else a segment output folder.

    Raises:
        ViewerError: it is neither.
    """
    try:
        return RunFolder(path, name)
    except ViewerError:
        return SegmentFolder(path, name)


class Viewer:
    """The state behind the app: the folders, their summaries and the image sources."""

    def __init__(self, options: ViewerOptions):
        self.options = options
        self.a = open_folder(Path(options.run))
        self.b: RunFolder | None = None
        if options.run_b is not None:
            b = open_folder(Path(options.run_b))
            if not isinstance(self.a, RunFolder) or not isinstance(b, RunFolder):
                raise ViewerError("RUN_B compares two bench runs: pass two `refseg bench run` --out folders")
            self.b = b
        self.summaries = Summaries()
        for run in (self.a, self.b):
            if isinstance(run, RunFolder):  # read the runs now, not on the first request
                run.refresh()
                self.summaries.get(run)
        self.guards = GuardViews()
        self.images = DatasetImages()
        self.drawings = Drawings(self.images)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            finalize=shown,  # every {{ value }} of every template: long texts cut, length shown
        )
        self.env.filters.update(FILTERS)
        for name in self.env.list_templates(extensions=["html"]):
            self.env.get_template(name)  # compile now: the first page should not pay for it

    def run(self, which: str) -> RunFolder | None:
        folder = {"a": self.a, "b": self.b}.get(which)
        return folder if isinstance(folder, RunFolder) else None

    def html(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        a_name = self.a.name
        title = a_name + (f" vs {self.b.name}" if self.b else "")
        marks = {"random_weights": pages.random_weight_names(self.a, self.b)} | context
        body = self.env.get_template(template).render(title=title, viewer=self, **marks)
        if len(body) > MAX_PAGE_CHARS and template != "error.html":  # many long items
            message = (
                f"this page would be {len(body):,} characters, over the viewer's limit of "
                f"{MAX_PAGE_CHARS:,}; its records hold too many items to show (read samples.jsonl)"
            )
            return self.html("error.html", status_code=413, message=message)
        return HTMLResponse(body, status_code=status_code)

    def not_found(self, what: str) -> HTMLResponse:
        return self.html("error.html", status_code=404, message=what)

    # -- pages ------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        if isinstance(self.a, SegmentFolder):
            return self.html("segment_index.html", **pages.segment_index(self.a))
        context = pages.run_page(self.a, self.b, request.query_params, self.summaries)
        for which in ("a", "b"):
            run, info = self.run(which), context.get(which)
            if run is not None and info is not None:
                view = self._guard(run, wait=False)  # never waits: "computing" until ready
                guard = view.context() if view is not None else {"pending": True}
                info["guard"] = {**guard, "which": which}
        return self.html("run.html", **context)

    def _guard(self, run: RunFolder, *, wait: bool) -> GuardView | None:
        """The run's guard section (computed in the background, cached per version of its files)."""
        data = self.summaries.get(run).data
        headline = data.metrics.value(data.metrics.headline) if data is not None else None
        return self.guards.get(run, headline, wait=wait)

    async def plot(self, request: Request) -> Response:
        run, name = self.run(request.path_params["which"]), request.path_params["name"]
        if run is None or name not in ("frontier", "calibration"):
            return self.not_found("no such plot")
        run.refresh()
        view = await anyio.to_thread.run_sync(lambda: self._guard(run, wait=True))
        return _png(await anyio.to_thread.run_sync(view.png, name) if view is not None else None)

    async def example(self, request: Request) -> Response:
        example_id = request.query_params.get("id", "")
        if not isinstance(self.a, RunFolder):
            return self.not_found("a segment folder has results, not examples: see the list")
        context = pages.example_page(self.a, self.b, example_id, request.query_params, self.images)
        if context is None:
            return self.not_found(f"no example {example_id!r} in {self.a.name}")
        return self.html("example.html", **context)

    async def segment_result(self, request: Request) -> Response:
        n = _int_param(request.path_params.get("n"))
        context = (
            pages.segment_result(self.a, n, self.images)
            if isinstance(self.a, SegmentFolder) and n is not None
            else None
        )
        if context is None:
            return self.not_found("no such result")
        return self.html("segment_result.html", **context)

    # -- pictures ---------------------------------------------------------------------------

    async def layer(self, request: Request) -> Response:
        run = self.run(request.path_params["which"])
        if run is None:
            return self.not_found("no such run")
        run.refresh()
        png = self.drawings.layer(run, request.path_params["layer"], request.query_params.get("id", ""))
        return _png(png)

    async def candidate(self, request: Request) -> Response:
        run = self.run(request.path_params["which"])
        q = request.query_params
        step, cand = _int_param(q.get("step")), _int_param(q.get("cand"))
        if run is None or step is None or cand is None:
            return self.not_found("no such candidate")
        return _png(self.drawings.candidate(run, q.get("id", ""), step, cand))

    async def vlm_image(self, request: Request) -> Response:
        run = self.run(request.path_params["which"])
        q = request.query_params
        event, part = _int_param(q.get("event")), _int_param(q.get("part"))
        if run is None or event is None or part is None:
            return self.not_found("no such image")
        return _image(vlm_image(run.trace, q.get("id", ""), event, part))

    def _segment(self, request: Request) -> SegmentResult | None:
        n = _int_param(request.path_params.get("n"))
        return self.a.result(n) if isinstance(self.a, SegmentFolder) and n is not None else None

    async def segment_picture(self, request: Request) -> Response:
        result = self._segment(request)
        path = result.picture(request.path_params["name"] + ".png") if result is not None else None
        if path is None or path.stat().st_size > MAX_IMAGE_FILE_BYTES:
            return self.not_found("no such picture")
        return Response(path.read_bytes(), media_type="image/png")

    async def segment_candidate(self, request: Request) -> Response:
        result, q = self._segment(request), request.query_params
        step, cand = _int_param(q.get("step")), _int_param(q.get("cand"))
        if result is None or step is None or cand is None:
            return self.not_found("no such candidate")
        return _png(self.drawings.segment_candidate(result, step, cand))

    async def segment_vlm_image(self, request: Request) -> Response:
        result, q = self._segment(request), request.query_params
        event, part = _int_param(q.get("event")), _int_param(q.get("part"))
        if result is None or event is None or part is None or not isinstance(self.a, SegmentFolder):
            return self.not_found("no such image")
        sample_id = str(result.result.get("sample_id", ""))
        return _image(vlm_image(self.a.trace_for(result), sample_id, event, part))


def _int_param(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _image(found: tuple[bytes, str] | None) -> Response:
    if found is None:
        return Response("no such image", status_code=404, media_type="text/plain")
    return Response(found[0], media_type=found[1])


def _png(data: bytes | None) -> Response:
    if data is None:
        return Response("no such picture", status_code=404, media_type="text/plain")
    return Response(data, media_type="image/png")


async def _too_large(_request: Request, exc: Exception) -> Response:
    """A picture over the drawing limit: HTTP 413 with the reason, not a MemoryError and a 500."""
    return Response(str(exc), status_code=413, media_type="text/plain")


def create_app(options: ViewerOptions) -> Starlette:
    """The viewer app for ``options`` (the folders are opened and checked now).

    Raises:
        ViewerError: a folder is neither a bench run nor a segment output, or RUN_B is not a
            bench run.
    """
    viewer = Viewer(options)
    routes = [
        Route("/", viewer.index),
        Route("/example", viewer.example),
        Route("/img/{which:str}/candidate.png", viewer.candidate),
        Route("/img/{which:str}/vlm.png", viewer.vlm_image),
        Route("/img/{which:str}/{layer:str}.png", viewer.layer),
        Route("/plot/{which:str}/{name:str}.png", viewer.plot),
        Route("/result/{n:int}", viewer.segment_result),
        Route("/result/{n:int}/candidate.png", viewer.segment_candidate),
        Route("/result/{n:int}/vlm.png", viewer.segment_vlm_image),
        Route("/result/{n:int}/{name:str}.png", viewer.segment_picture),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=options.allowed_hosts()),
        Middleware(_SecurityHeaders),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        viewer.summaries.close()
        viewer.guards.close()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={PictureTooLarge: _too_large},
    )
    app.state.viewer = viewer
    return app
