"""A run folder's resolved config.json: written once per run (with the package version, Python, platform and the
command line), read back by whatever uses the run (a generator's data section, a classifier's test-time settings),
and compared with new settings when a run is resumed."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path
from typing import Any

from synthaug import __version__
from synthaug.config import ConfigError
from synthaug.utils import to_jsonable, write_json_atomic

CONFIG_FILE = "config.json"


def write_run_config(folder: str | Path, config: Any) -> Path:
    """Write `config` (a dataclass or dict) as the run's config.json, with where and how it ran."""
    payload = {"synthaug_version": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
               "command": " ".join(sys.argv), **to_jsonable(config)}
    path = Path(folder) / CONFIG_FILE
    write_json_atomic(path, payload)
    return path


def read_run_config(folder: str | Path, missing_ok: bool = False) -> dict[str, Any]:
    """A run's config.json as a dict; {} for a folder without one when `missing_ok`."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        if missing_ok:
            return {}
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}; is it a synthaug run folder?")
    return json.loads(path.read_text())


def generator_data_section(generator_run: str | Path) -> dict[str, Any]:
    """The `data` section a generator run recorded: the real data it was trained on (synthaug.data turns it into a
    DataConfig)."""
    path = Path(generator_run) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{generator_run} has no config.json; is it a `synthaug generator fit` run folder?")
    data = json.loads(path.read_text()).get("data")
    if data is None:
        raise ValueError(f"{path} records no `data` section, so the generator's real training data is unknown")
    return data


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


def check_resume_matches(run: Any, now: dict[str, Any], resumable: set[str], may_change: str) -> None:
    """Refuse to resume a run (a synthaug.runs.Run) with other settings than its config.json, naming each difference."""
    path = run.file(CONFIG_FILE)
    if not path.exists():
        return
    diffs = resume_differences(json.loads(path.read_text()), to_jsonable(now), resumable)
    if diffs:
        raise ConfigError(f"cannot resume {run.path}: settings differ from its config.json: {'; '.join(diffs)}. "
                          f"Pass the same flags as the original run (only {may_change} may change), or choose another --out")
