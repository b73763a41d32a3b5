"""Run folders: resolved config, log, metrics.jsonl, artefacts, and the package version."""

from __future__ import annotations

import json
import logging
import platform
import re
import sys
import time
from pathlib import Path
from typing import Any

from synthaug import __version__
from synthaug.utils import to_jsonable, write_json_atomic


def next_run_dir(parent: str | Path, prefix: str = "") -> Path:
    """parent/NNN[-prefix] with NNN one more than the highest number already there."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in parent.iterdir() if (m := re.match(r"(\d+)", p.name))]
    name = f"{max(numbers, default=-1) + 1:03d}" + (f"-{prefix}" if prefix else "")
    return parent / name


def resume_differences(saved: Any, now: dict[str, Any], resumable: set[str], prefix: str = "") -> list[str]:
    """'section.key (old -> new)' for every setting in `now` that differs from `saved`; keys named in
    `resumable` (at any depth) may change. Keys only in `saved` (version, platform, ...) are ignored."""
    diffs = []
    for key, value in now.items():
        if key in resumable:
            continue
        old = saved.get(key) if isinstance(saved, dict) else None
        if isinstance(value, dict) and isinstance(old, dict):
            diffs += resume_differences(old, value, resumable, f"{prefix}{key}.")
        elif old != value:
            diffs.append(f"{prefix}{key} ({old!r} -> {value!r})")
    return diffs


def check_resume_matches(run: "Run", now: dict[str, Any], resumable: set[str], may_change: str) -> None:
    """Refuse to resume a run with other settings than its config.json, naming each difference."""
    from synthaug.config import ConfigError

    path = run.file("config.json")
    if not path.exists():
        return
    diffs = resume_differences(json.loads(path.read_text()), to_jsonable(now), resumable)
    if diffs:
        raise ConfigError(f"cannot resume {run.path}: settings differ from its config.json: {'; '.join(diffs)}. "
                          f"Pass the same flags as the original run (only {may_change} may change), or choose another --out")


class Run:
    """One run folder. Everything a run writes goes through here.

    Under torchrun only rank 0 writes: on the other ranks a Run creates nothing and its write methods do
    nothing, while `file()` still names the files (every rank reads a checkpoint to resume); code that writes
    through a path itself checks `writes`.
    """

    def __init__(self, path: str | Path, resume: bool = False) -> None:
        from synthaug.training.distributed import is_main  # here: synthaug.training imports this module

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
        if not self.writes:
            return
        payload = {"synthaug_version": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
                   "command": " ".join(sys.argv), **to_jsonable(config)}
        write_json_atomic(self.file("config.json"), payload)

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
