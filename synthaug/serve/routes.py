"""The routes, grouped by page: each only validates, queues and formats; the model calls are in state.py."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, File, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from synthaug import __version__
from synthaug.serve.images import data_url, png_bytes, png_zip
from synthaug.serve.limits import RequestRefused
from synthaug.serve.reports import scan_reports
from synthaug.serve.state import ServerState

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-src 'self' blob:; "
            "object-src 'none'; base-uri 'none'")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"  # a report runs no script


class StrictRequest(BaseModel):
    """A JSON request body that refuses fields it does not know: a misspelt `"n": 4` would otherwise be dropped and
    the default `count` used without a word. Every JSON request model of the API derives from this."""

    model_config = ConfigDict(extra="forbid")  # also in the OpenAPI schema: additionalProperties false

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        # pydantic's own extra="forbid" error says "Extra inputs are not permitted" without the accepted names
        if isinstance(data, dict):
            accepted = [f.alias or name for name, f in cls.model_fields.items()]
            unknown = [key for key in data if key not in accepted]
            if unknown:
                # the client's names go in the context, never into the template (a "{" in a key would be parsed)
                fields = "fields" if len(unknown) > 1 else "field"
                template = f"unknown {fields} {{unknown}}: the accepted fields are {{accepted}}"
                raise PydanticCustomError("extra_forbidden", template, {"unknown": ", ".join(map(repr, unknown)),
                                                                        "accepted": ", ".join(accepted)})
        return data


class GenerateRequest(StrictRequest):
    generator: str = Field(description="a generator name from GET /api/generators")
    class_name: str = Field(description="one of that generator's class names")
    count: int = Field(16, ge=1, description="images to generate (at most the server's max_generate_images)")
    seed: int = Field(0, ge=0, lt=2**63, description="the same seed gives the same images")


def page_routes(static: dict[str, bytes]) -> APIRouter:
    """The page's three files, from memory: a request picks one by name, never a path."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def page() -> Response:
        return Response(static["index.html"], media_type="text/html", headers={"Content-Security-Policy": PAGE_CSP})

    @router.get("/static/{name}")
    async def static_file(name: str) -> Response:
        if name not in static:
            raise RequestRefused(404, f"no static file {name!r}")
        return Response(static[name], media_type=STATIC_FILES[name])

    return router


def health_routes(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["server"])
    cfg = state.cfg

    @router.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness plus what the server holds and has done (the container's HEALTHCHECK calls it)."""
        return {"status": "ok", "version": __version__, "device": state.store.device,
                "auth_required": cfg.token is not None, "micro_batching": cfg.micro_batching,
                "forward_rows": cfg.forward_rows,
                "limits": {"max_upload_bytes": cfg.max_upload_bytes, "max_pixels": cfg.max_pixels,
                           "max_generate_images": cfg.max_generate_images,
                           "max_classify_images": cfg.max_classify_images},
                "generators": {n: b.stats.as_dict() for n, b in state.batchers.items()}}

    return router


def generate_routes(state: ServerState) -> APIRouter:
    router = APIRouter(tags=["generate"])

    @router.get("/generators")
    async def generators() -> dict[str, Any]:
        """The loaded generators and the classes each can draw."""
        return {"generators": [g.describe() for g in state.store.generators.values()]}

    @router.post("/generate")
    async def generate(req: GenerateRequest) -> dict[str, Any]:
        """`count` images of one class as PNG data URLs; the same seed gives the same images."""
        served, images = await state.generate(req.generator, req.class_name, req.count, req.seed)
        return {"generator": served.name, "class_name": req.class_name, "seed": req.seed, "count": req.count,
                "image_shape": list(served.generator.image_shape), "images": [data_url(png_bytes(x)) for x in images]}

    @router.post("/generate/zip", response_class=Response,
                 responses={200: {"content": {"application/zip": {}}, "description": "images/NNN.png + manifest.json"}})
    async def generate_zip(req: GenerateRequest) -> Response:
        """The same images as /api/generate, as a zip of PNG files with a manifest."""
        served, images = await state.generate(req.generator, req.class_name, req.count, req.seed)
        manifest = {"generator": served.name, "kind": served.generator.name, "class_name": req.class_name,
                    "seed": req.seed, "count": req.count, "synthaug_version": __version__}
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{served.name}-{req.class_name}-seed{req.seed}") + ".zip"
        return Response(png_zip(images, manifest), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return router


def classify_routes(state: ServerState) -> APIRouter:
    router = APIRouter(tags=["classify"])
    cfg = state.cfg

    @router.get("/classifier")
    async def classifier() -> dict[str, Any]:
        """The loaded classifier: its classes and the size and channels images are converted to."""
        return state.store.classifier.describe()

    @router.post("/classify")
    async def classify(files: list[UploadFile] = File(..., description="image files (PNG, JPEG, GIF, BMP, TIFF, WebP)")
                       ) -> dict[str, Any]:
        """Class probabilities for each uploaded image, with the image as the model saw it."""
        if len(files) > cfg.max_classify_images:
            raise RequestRefused(422, f"{len(files)} files is more than the {cfg.max_classify_images} one request may "
                                      "carry; send them in several requests")
        with state.gates["classify"]:
            uploads = [(f.filename or f"file {i + 1}", await f.read()) for i, f in enumerate(files)]
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(state.classify_executor, state.classify_files, uploads)

    return router


def report_routes(runs_root: str | None) -> APIRouter:
    router = APIRouter(tags=["reports"])

    @router.get("/runs")
    def runs() -> dict[str, Any]:  # plain def: the folder scan runs on a worker thread
        """Experiment runs under --runs-root that have a report.html, newest first."""
        return {"runs_root_set": runs_root is not None, "runs": [r.describe() for r in scan_reports(runs_root).values()]}

    @router.get("/runs/{name:path}/report", response_class=HTMLResponse)
    def report(name: str) -> Response:
        """A run's report.html, looked up by run name among the runs the server found (never as a path)."""
        found = scan_reports(runs_root)
        if name not in found:
            raise RequestRefused(404, f"no run named {name!r} with a report; GET /api/runs lists them")
        return HTMLResponse(found[name].path.read_bytes(), headers={"Content-Security-Policy": REPORT_CSP})

    @router.get("/runs/{name:path}/forest.png", response_class=Response)
    def forest(name: str) -> Response:
        """A run's forest plot (each arm's difference from the baseline), looked up by run name like its report."""
        found = scan_reports(runs_root)
        path = found[name].forest() if name in found else None
        if path is None:
            raise RequestRefused(404, f"no run named {name!r} with a forest plot; GET /api/runs lists them")
        return Response(path.read_bytes(), media_type="image/png")

    return router
