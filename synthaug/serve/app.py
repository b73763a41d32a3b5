"""create_app: the FastAPI app over a model store: limits outermost, then the token on /api/, then the routes."""

from __future__ import annotations

import hmac
import re
from contextlib import asynccontextmanager
from importlib import resources
from typing import AsyncIterator, Callable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from synthaug import __version__
from synthaug.serve.config import ServeConfig
from synthaug.serve.limits import LimitsMiddleware, RequestRefused
from synthaug.serve.models import ModelStore
from synthaug.serve.routes import (STATIC_FILES, classify_routes, generate_routes, health_routes, page_routes,
                                   report_routes)
from synthaug.serve.state import ServerState


def read_static() -> dict[str, bytes]:
    """The page's three files, read once from the installed package."""
    folder = resources.files("synthaug.serve") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_FILES}


def token_checker(token: str | None) -> Callable:
    """A FastAPI dependency: 401 unless `Authorization: Bearer <token>` (nothing to check without a token)."""
    async def check(request: Request) -> None:
        if token is None:
            return
        match = re.fullmatch(r"Bearer\s+(\S+)", request.headers.get("authorization", "").strip(), flags=re.IGNORECASE)
        if not match:
            raise RequestRefused(401, "missing bearer token: send the header `Authorization: Bearer <token>` "
                                      "(the token the server was started with)", {"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(match.group(1).encode(), token.encode()):  # constant time: no timing oracle
            raise RequestRefused(401, "wrong bearer token: use the token the server was started with "
                                      "(--token or $SYNTHAUG_TOKEN)", {"WWW-Authenticate": "Bearer"})
    return check


def create_app(cfg: ServeConfig, store: ModelStore | None = None) -> FastAPI:
    """The web app over `store` (loaded from cfg's run folders when not given: once, here)."""
    store = store or ModelStore.load(cfg.generator_runs, cfg.classifier_run, cfg.device)
    state = ServerState.build(cfg, store)

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

    app.include_router(page_routes(read_static()))
    app.include_router(health_routes(state))  # open: the container's HEALTHCHECK has no token
    api = APIRouter(prefix="/api", dependencies=[Depends(token_checker(cfg.token))])
    for router in (generate_routes(state), classify_routes(state), report_routes(cfg.runs_root)):
        api.include_router(router)
    app.include_router(api)
    return app
