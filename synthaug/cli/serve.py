"""synthaug serve: a web page and JSON API to generate images, classify uploads and open reports."""

from __future__ import annotations

import argparse
import sys

import torch

from synthaug.config import ConfigError
from synthaug.serve.config import MB, ServeConfig, TOKEN_ENV, exposure_warning


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator-run", action="append", required=True, metavar="[NAME=]DIR",
                   help="generator run folder (repeatable); the API calls it NAME, or the folder's name")
    p.add_argument("--classifier-run", required=True, metavar="DIR", help="classifier run folder (model.json)")
    p.add_argument("--runs-root", metavar="DIR", help="folder of experiment runs whose report.html the Reports page lists")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda, cuda:1")
    p.add_argument("--token", help=f"require `Authorization: Bearer TOKEN` on the API (default: ${TOKEN_ENV}, which "
                                   "keeps it out of the process list)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    g = p.add_argument_group("limits")
    g.add_argument("--max-upload-mb", type=float, default=10.0, help="request body limit in MB (default 10)")
    g.add_argument("--max-pixels", type=int, default=25_000_000, help="decoded pixels per image (default 25 million)")
    g.add_argument("--max-images", type=int, default=64, help="images per generate request (default 64)")
    g.add_argument("--max-files", type=int, default=16, help="files per classify request (default 16)")
    g.add_argument("--max-pending", type=int, default=32,
                   help="generate requests queued or running before 503 (default 32)")
    g.add_argument("--request-timeout", type=float, default=60.0, help="seconds before a request gets 504 (default 60)")
    b = p.add_argument_group("micro-batching")
    b.add_argument("--no-batching", action="store_true", help="one generate request per forward pass")
    b.add_argument("--batch-wait-ms", type=float, default=None,
                   help="how long a batch waits for more requests (default by device: 0 on CPU, 10 on a GPU)")
    b.add_argument("--forward-rows", type=int, default=32,
                   help="images per forward pass, padded to exactly this (default 32; larger suits a GPU)")


def config_from_args(args: argparse.Namespace):  # -> ServeConfig

    return ServeConfig.with_env_token(
        generator_runs=args.generator_run, classifier_run=args.classifier_run, runs_root=args.runs_root,
        host=args.host, port=args.port, device=args.device, token=args.token,
        max_upload_bytes=int(args.max_upload_mb * MB), max_pixels=args.max_pixels, max_generate_images=args.max_images,
        max_classify_images=args.max_files, max_pending_generations=args.max_pending,
        request_timeout_s=args.request_timeout, micro_batching=not args.no_batching, batch_wait_ms=args.batch_wait_ms,
        forward_rows=args.forward_rows, max_batch_images=max(256, args.max_images))


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # lazy: uvicorn and fastapi are the optional `serve` extra

        from synthaug.serve.app import create_app
    except ImportError as exc:
        raise ConfigError(f"synthaug serve needs the serve extra ({exc.name} is missing): "
                          "pip install 'synthaug[serve]'") from exc

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_from_args(args)
    warning = exposure_warning(cfg)
    if warning:
        print(warning, file=sys.stderr)
    app = create_app(cfg)  # loads every model now, before the port opens
    print(f"synthaug serve: http://{cfg.host}:{cfg.port}/  (API docs at /docs)", file=sys.stderr)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="info", timeout_graceful_shutdown=5)
    return 0
