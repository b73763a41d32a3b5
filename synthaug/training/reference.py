"""Reference classifiers: trained once on real data with a caller's recipe, cached in a folder, reused after.

They measure or filter (a filter classifier for `synth make`, the feature classifier of `synth evaluate`); they never
train an arm. Each caller chooses the recipe, the data and where the cache lives; training, caching and the record
in config.json go through this one function.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

from synthaug.data import DatasetSplits
from synthaug.runs import Run
from synthaug.training.classify import train_on_splits
from synthaug.training.config import TrainConfig

log = logging.getLogger(__name__)


def reference_classifier(folder: str | Path, cfg: TrainConfig, splits: Callable[[], DatasetSplits], record: dict[str, Any],
                         description: str) -> tuple[Path, dict[str, Any]]:
    """The classifier in `folder` and its test metrics; trained first with recipe `cfg` on `splits()` (loaded only
    then) when the folder holds no finished run. `record` goes into its config.json (say what it is for)."""
    folder = Path(folder)
    done = folder / "metrics.json"  # written last: a folder with it holds a finished classifier
    if not done.is_file():
        log.warning("training %s (cached in %s)", description, folder)
        run = Run(folder, resume=True)
        run.write_config(record)
        train_on_splits(splits(), cfg, run)
        run.close()
    return folder, json.loads(done.read_text())
