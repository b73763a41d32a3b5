"""The FastAPI app: routes that check input, then call the model store through the batcher and the gates.

No model code lives here; the handlers only validate, queue and format.
"""

from __future__ import annotations

import asyncio
import hmac
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, AsyncIterator

import torch
from fastapi import APIRouter, Depends, FastAPI, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from synthaug import __version__
from synthaug.serve.batching import MicroBatcher
from synthaug.serve.config import ServeConfig
from synthaug.serve.images import data_url, png_bytes, png_zip, to_model_input
from synthaug.serve.limits import Gate, LimitsMiddleware, RequestRefused, decode_image
from synthaug.serve.models import ModelStore, ServedGenerator
from synthaug.serve.reports import scan_reports

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-src 'self' blob:; "
            "object-src 'none'; base-uri 'none'")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"  # a report runs no script


class GenerateRequest(BaseModel):
    generator: str = Field(description="a generator name from GET /api/generators")
    class_name: str = Field(description="one of that generator's class names")
    count: int = Field(16, ge=1, description="images to generate (at most the server's max_generate_images)")
    seed: int = Field(0, ge=0, lt=2**63, description="the same seed gives the same images")


@dataclass
class ServerState:
    """Everything a running app owns besides its config: models, their threads, batchers, gates."""

    cfg: ServeConfig
    store: ModelStore
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)
    executors: list[ThreadPoolExecutor] = field(default_factory=list)
    classify_executor: ThreadPoolExecutor | None = None
    gates: dict[str, Gate] = field(default_factory=dict)

    @classmethod
    def build(cls, cfg: ServeConfig, store: ModelStore) -> "ServerState":
        state = cls(cfg, store)
        for name, served in store.generators.items():
            # one thread per model: torch already spreads one forward pass over every core
            ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"generator-{name}")
            state.executors.append(ex)
            state.batchers[name] = MicroBatcher(lambda reqs, s=served: s.sample_many(reqs, cfg.forward_rows), ex,
                                                cfg.forward_rows, cfg.batch_wait_ms / 1000, cfg.max_batch_images,
                                                cfg.micro_batching)
        state.classify_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="classifier")
        state.executors.append(state.classify_executor)
        state.gates = {"generate": Gate(cfg.max_pending_generations, "generate", cfg.retry_after_s),
                       "classify": Gate(cfg.max_pending_classifications, "classify", cfg.retry_after_s)}
        return state

    async def close(self) -> None:
        for b in self.batchers.values():
            await b.close()
        for ex in self.executors:
            ex.shutdown(wait=False, cancel_futures=True)

    def generator(self, name: str) -> ServedGenerator:
        if name not in self.store.generators:
            raise RequestRefused(404, f"unknown generator {name!r}; this server has: {', '.join(self.store.generators)}")
        return self.store.generators[name]

    def class_index(self, served: ServedGenerator, class_name: str) -> int:
        names = served.generator.class_names
        if class_name not in names:
            raise RequestRefused(422, f"unknown class {class_name!r} for generator {served.name}; "
                                      f"its classes: {', '.join(names)}")
        return names.index(class_name)

    async def generate(self, req: GenerateRequest) -> tuple[ServedGenerator, torch.Tensor]:
        served = self.generator(req.generator)
        index = self.class_index(served, req.class_name)
        if req.count > self.cfg.max_generate_images:
            raise RequestRefused(422, f"count {req.count} is more than the {self.cfg.max_generate_images} images one "
                                      "request may ask for; split it into several requests")
        with self.gates["generate"]:
            images = await self.batchers[served.name].submit(torch.full((req.count,), index, dtype=torch.int64), req.seed)
        return served, images

    def classify_files(self, uploads: list[tuple[str, bytes]]) -> dict[str, Any]:
        """Decode, convert and predict: runs on the classifier's thread (decoding big images is CPU work)."""
        clf = self.store.classifier
        decoded = [decode_image(data, name, self.cfg.max_pixels) for name, data in uploads]
        inputs = torch.stack([to_model_input(d.image, clf.spec["in_channels"], clf.spec["image_size"]) for d in decoded])
        probs = clf.predict(inputs)
        results = []
        for (name, _), d, x, p in zip(uploads, decoded, inputs, probs):
            order = p.argsort()[::-1]
            results.append({"filename": name, "format": d.format, "uploaded_size": list(d.size),
                            "predicted": clf.class_names[int(order[0])],
                            "probabilities": {c: round(float(v), 6) for c, v in zip(clf.class_names, p)},
                            "seen_as": data_url(png_bytes(x))})
        return {"classifier": clf.name, "class_names": clf.class_names, "results": results}


def read_static() -> dict[str, bytes]:
    """The page's three files, read once: requests pick one by name from this dict, never from disk."""
    folder = resources.files("synthaug.serve") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


def token_checker(cfg: ServeConfig):  # -> a FastAPI dependency
    async def check(request: Request) -> None:
        if cfg.token is None:
            return
        header = request.headers.get("authorization", "")
        match = re.fullmatch(r"Bearer\s+(\S+)", header.strip(), flags=re.IGNORECASE)
        if not match:
            raise RequestRefused(401, "missing bearer token: send the header `Authorization: Bearer <token>` "
                                      "(the token the server was started with)", {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(match.group(1).encode(), cfg.token.encode()):
            raise RequestRefused(401, "wrong bearer token: use the token the server was started with "
                                      "(--token or $SYNTHAUG_TOKEN)", {"WWW-Authenticate": "Bearer"})
    return check


def create_app(cfg: ServeConfig, store: ModelStore | None = None) -> FastAPI:
    """The web app over `store` (loaded from cfg's run folders when not given)."""
    store = store or ModelStore.load(cfg.generator_runs, cfg.classifier_run, cfg.device)
    state = ServerState.build(cfg, store)
    static = read_static()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.close()

    app = FastAPI(title="synthaug", version=__version__, lifespan=lifespan,
                  description="Generate images of a class, classify an upload, browse experiment reports.")
    app.state.serve = state
    app.add_middleware(LimitsMiddleware, max_body=cfg.max_upload_bytes, timeout_s=cfg.request_timeout_s)

    @app.exception_handler(RequestRefused)
    async def refused(_: Request, exc: RequestRefused) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(static["index.html"], media_type="text/html", headers={"Content-Security-Policy": PAGE_CSP})

    @app.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> Response:
        if name not in static:
            raise RequestRefused(404, f"no static file {name!r}")
        return Response(static[name], media_type=STATIC_FILES[name])

    @app.get("/api/health", tags=["server"])
    async def health() -> dict[str, Any]:
        """Liveness plus what the server holds and has done (used by the container's HEALTHCHECK)."""
        return {"status": "ok", "version": __version__, "device": store.device, "auth_required": cfg.token is not None,
                "micro_batching": cfg.micro_batching, "forward_rows": cfg.forward_rows,
                "limits": {"max_upload_bytes": cfg.max_upload_bytes, "max_pixels": cfg.max_pixels,
                           "max_generate_images": cfg.max_generate_images,
                           "max_classify_images": cfg.max_classify_images},
                "generators": {n: b.stats.as_dict() for n, b in state.batchers.items()}}

    api = APIRouter(prefix="/api", dependencies=[Depends(token_checker(cfg))])

    @api.get("/generators", tags=["generate"])
    async def generators() -> dict[str, Any]:
        """The loaded generators and the classes each can draw."""
        return {"generators": [g.describe() for g in store.generators.values()]}

    @api.post("/generate", tags=["generate"])
    async def generate(req: GenerateRequest) -> dict[str, Any]:
        """`count` images of one class as PNG data URLs; the same seed gives the same images."""
        served, images = await state.generate(req)
        return {"generator": served.name, "class_name": req.class_name, "seed": req.seed, "count": req.count,
                "image_shape": list(served.generator.image_shape),
                "images": [data_url(png_bytes(x)) for x in images]}

    @api.post("/generate/zip", tags=["generate"], response_class=Response,
              responses={200: {"content": {"application/zip": {}}, "description": "images/NNN.png + manifest.json"}})
    async def generate_zip(req: GenerateRequest) -> Response:
        """The same images as /api/generate, as a zip of PNG files with a manifest."""
        served, images = await state.generate(req)
        manifest = {"generator": served.name, "kind": served.generator.name, "class_name": req.class_name,
                    "seed": req.seed, "count": req.count, "synthaug_version": __version__}
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{served.name}-{req.class_name}-seed{req.seed}") + ".zip"
        return Response(png_zip(images, manifest), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    @api.get("/classifier", tags=["classify"])
    async def classifier() -> dict[str, Any]:
        """The loaded classifier: its classes and the size and channels images are converted to."""
        return store.classifier.describe()

    @api.post("/classify", tags=["classify"])
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

    @api.get("/runs", tags=["reports"])
    def runs() -> dict[str, Any]:  # plain def: the folder scan runs on a worker thread
        """Experiment runs under --runs-root that have a report.html, newest first."""
        return {"runs_root_set": cfg.runs_root is not None,
                "runs": [r.describe() for r in scan_reports(cfg.runs_root).values()]}

    @api.get("/runs/{name:path}/report", tags=["reports"], response_class=HTMLResponse)
    def report(name: str) -> Response:
        """A run's report.html, looked up by run name among the runs the server found (never as a path)."""
        found = scan_reports(cfg.runs_root)
        if name not in found:
            raise RequestRefused(404, f"no run named {name!r} with a report; GET /api/runs lists them")
        return HTMLResponse(found[name].path.read_bytes(), headers={"Content-Security-Policy": REPORT_CSP})

    app.include_router(api)
    return app
