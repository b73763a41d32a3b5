"""ServeConfig: everything that decides what `synthaug serve` loads, where it listens and what it refuses."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from synthaug.config import ConfigError

# The default micro-batch wait per device type. CPU: docs/serving.md's load test answered more requests per second with
# 0 ms than with 10 ms at 1, 4, 16 and 64 clients (a CPU forward pass is slow enough that requests pile up by
# themselves). GPU: 10 ms, the usual value for servers that batch on a GPU, until benchmarks/gpu_check.py measures it.
BATCH_WAIT_MS = {"cpu": 0.0, "cuda": 10.0}
TOKEN_ENV = "SYNTHAUG_TOKEN"  # the bearer token, when not given with --token (keeps it out of `ps`)
MB = 1024 * 1024


@dataclass
class ServeConfig:
    generator_runs: list[str] = field(default_factory=list)  # generator run folders, DIR or NAME=DIR (NAME: its API name)
    classifier_run: str = ""  # classifier run folder (model.json + model.safetensors)
    runs_root: str | None = None  # folder whose runs' report.html the Reports page lists (None: no reports)
    host: str = "127.0.0.1"  # address to bind; anything but loopback without a token prints a warning
    port: int = 8000  # TCP port
    device: str = "auto"  # auto (cuda when available), cpu, cuda, cuda:1
    token: str | None = None  # bearer token every /api/ call but health must send (None: no auth)
    max_upload_bytes: int = 10 * MB  # request body limit (all uploaded files together); larger: 413
    max_pixels: int = 25_000_000  # decoded width x height per image; larger: 400 (decompression bombs)
    max_generate_images: int = 64  # images per generate request; more: 422
    max_classify_images: int = 16  # files per classify request; more: 422
    max_pending_generations: int = 32  # generate requests queued or running at once; more: 503 + Retry-After
    max_pending_classifications: int = 16  # classify requests queued or running at once; more: 503 + Retry-After
    retry_after_s: int = 1  # the Retry-After a 503 suggests, seconds
    request_timeout_s: float = 60.0  # whole request (upload, queue, forward pass); longer: 504
    micro_batching: bool = True  # batch concurrent generate requests per generator into shared forward passes
    batch_wait_ms: float | None = None  # how long the first request of a batch waits for others to join; None: by
    #   device (BATCH_WAIT_MS: 0 on CPU, where waiting was slower at every load measured, 10 on a GPU)
    forward_rows: int = 32  # images per forward pass; every pass is padded to exactly this many rows, so an
    # image's bits never depend on what it was batched with (kernels pick their algorithm by batch size)
    max_batch_images: int = 256  # images one micro-batch gathers at most (then it runs)

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not self.generator_runs:
            raise ConfigError(f"{name}.generator_runs: give at least one --generator-run DIR")
        if not self.classifier_run:
            raise ConfigError(f"{name}.classifier_run: give --classifier-run DIR")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{name}.port must be in 0..65535, got {self.port}")
        for f in ("max_upload_bytes", "max_pixels", "max_generate_images", "max_classify_images",
                  "max_pending_generations", "max_pending_classifications", "retry_after_s", "forward_rows",
                  "max_batch_images"):
            if getattr(self, f) < 1:
                raise ConfigError(f"{name}.{f} must be >= 1, got {getattr(self, f)}")
        if self.request_timeout_s <= 0 or (self.batch_wait_ms is not None and self.batch_wait_ms < 0):
            raise ConfigError(f"{name}: request_timeout_s must be > 0 and batch_wait_ms >= 0, "
                              f"got {self.request_timeout_s} and {self.batch_wait_ms}")
        if self.max_generate_images > self.max_batch_images:
            raise ConfigError(f"{name}.max_generate_images ({self.max_generate_images}) exceeds max_batch_images "
                              f"({self.max_batch_images}); one request must fit in one batch")
        if self.token is not None and not self.token.strip():
            raise ConfigError(f"{name}.token is empty; pass a real token or none")

    @classmethod
    def with_env_token(cls, **kwargs: object) -> "ServeConfig":
        """Like the constructor, but a missing token comes from $SYNTHAUG_TOKEN."""
        if kwargs.get("token") is None and os.environ.get(TOKEN_ENV):
            kwargs["token"] = os.environ[TOKEN_ENV]
        return cls(**kwargs)  # type: ignore[arg-type]


def batch_wait_seconds(cfg: ServeConfig, device: str) -> float:
    """The micro-batch wait for models on `device` (cpu, cuda, cuda:1): the configured one, or the device's default."""
    if cfg.batch_wait_ms is not None:
        return cfg.batch_wait_ms / 1000
    return BATCH_WAIT_MS.get(device.split(":")[0], BATCH_WAIT_MS["cuda"]) / 1000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: only the operator knows where it resolves, so treat it as exposed
        return False


def exposure_warning(cfg: ServeConfig) -> str | None:
    """The warning to print when the server listens beyond this machine with no token."""
    if cfg.token or is_loopback(cfg.host):
        return None
    return (f"WARNING: serving on {cfg.host}:{cfg.port} without a token: anyone who can reach this address can "
            f"generate, classify and read reports; set ${TOKEN_ENV} (or --token), or bind to 127.0.0.1")
