"""Run folders: resolved config, log, metrics.jsonl, artefacts, and the package version. Only rank 0 of a
torchrun writes; the config.json format itself belongs to synthaug.storage.run_config."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from synthaug.storage.run_config import check_resume_matches, resume_differences, write_run_config  # noqa: F401
from synthaug.training.distributed import is_main
from synthaug.utils import to_jsonable, write_json_atomic


class Run:
    """One run folder. Everything a run writes goes through here.

    Under torchrun only rank 0 writes: on the other ranks a Run creates nothing and its write methods do
    nothing, while `file()` still names the files (every rank reads a checkpoint to resume); code that writes
    through a path itself checks `writes`.
    """

    def __init__(self, path: str | Path, resume: bool = False) -> None:
        self.path = Path(path)
        self.writes = is_main()
        self.logger = logging.getLogger(f"synthaug.run.{self.path}")
        if not self.writes:
            return
        if self.path.exists() and any(self.path.iterdir()) and not resume:
            if (self.path / "config.json").exists():
                raise FileExistsError(
                    f"run folder {self.path} already holds a run; pass --resume to continue it or choose another --out"
                )
        self.path.mkdir(parents=True, exist_ok=True)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        if not self.logger.handlers:
            handler = logging.FileHandler(self.path / "log.txt")
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            self.logger.addHandler(handler)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: Any) -> None:
        if self.writes:
            write_run_config(self.path, config)

    def write_json(self, name: str, obj: Any) -> Path:
        if self.writes:
            write_json_atomic(self.file(name), obj)
        return self.file(name)

    def log(self, message: str, echo: bool = False) -> None:
        if not self.writes:
            return
        self.logger.info(message)
        if echo:
            print(message, file=sys.stderr)

    def append_metrics(self, row: dict[str, Any]) -> None:
        if not self.writes:
            return
        row = {"time": round(time.time(), 3), **to_jsonable(row)}
        with open(self.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")

    def close(self) -> None:
        for h in list(self.logger.handlers):
            h.close()
            self.logger.removeHandler(h)
