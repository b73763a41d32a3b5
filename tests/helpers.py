"""Small builders shared by several test files."""

import os
from pathlib import Path

import pytest
import torch

from synthaug.data import ImageDataset


def killed_on_call(fn, n: int):
    """`fn` wrapped to raise KeyboardInterrupt on its n-th call (what a kill looks like to a loop), else pass through."""
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapper


def make_tiny_dataset(seed: int = 0, n_per: int = 40) -> ImageDataset:
    """3 classes of 16x16 grey images that differ by where a bright bar sits: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for c in range(3):
        x = (torch.rand(n_per, 1, 16, 16, generator=g) * 60).to(torch.uint8)
        x[:, :, 2 + 4 * c : 6 + 4 * c, 4:12] = 230
        images.append(x)
        labels.append(torch.full((n_per,), c))
    return ImageDataset(torch.cat(images), torch.cat(labels), ["a", "b", "c"], name="tiny")


def tiny_config(**overrides):
    """A tiny experiment on three digits classes with every kind: seconds to run on one core."""
    from synthaug.config import from_dict
    from synthaug.experiments import ExperimentConfig

    cfg = {
        "name": "tiny",
        "kinds": ["compare", "p-real", "transfer", "data-efficiency", "optimizers", "imbalance"],
        "data": {"dataset": "digits", "per_class": 12, "classes": ["0", "1", "7"], "imbalance_ratio": 0.5,
                 "minority_classes": ["7"]},
        "seeds": [0, 1],
        "classifier": {"model": "small-cnn", "steps": 15, "batch_size": 16, "augment": ["crop"], "eval_batch_size": 256},
        "evaluator": {"model": "small-cnn", "steps": 20, "batch_size": 64, "augment": []},
        "generators": [{"name": "cgan", "generator": "cgan",
                        "config": {"steps": 6, "batch_size": 8, "g_width": 8, "d_width": 8, "sample_every": 6,
                                   "checkpoint_every": 6, "log_every": 2}}],
        "synthetic": {"per_class": 10},
        "p_real_values": [0.0, 0.5, 1.0],
        "budgets": [6, 12],
    }
    cfg.update(overrides)
    return from_dict(ExperimentConfig, cfg)


def register_test_mlp() -> None:
    """`test-mlp`: a classifier without batch norm or dropout, so that data-parallel training must match one
    process exactly (up to float summation order): only the sharding and the gradient average are at work."""
    from torch import nn

    from synthaug.classifiers.registry import CLASSIFIERS, Backbone

    if "test-mlp" in CLASSIFIERS:
        return

    @CLASSIFIERS.register("test-mlp")
    class TestMLP(Backbone):
        def __init__(self, in_channels: int, num_classes: int, image_size: int, pretrained: bool = False) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, 32), nn.Tanh())
            self.feature_dim = 32
            self.head = nn.Linear(32, num_classes)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)


class KillAfterCheckpoint:
    """Wraps an experiment unit: the first time it runs (no `marker` file yet), its worker process is killed with
    SIGKILL right after the classifier loop's first checkpoint, as an out-of-memory kill or a lost node would; the
    marker then holds the folder of the run that was killed."""

    def __init__(self, task, marker: str) -> None:
        self.task, self.marker = task, marker
        self.name, self.threads = task.name, None

    def __call__(self):
        import os
        import signal
        from pathlib import Path

        from synthaug.training.loop import TrainingSession

        self.task.threads = self.threads
        if not Path(self.marker).exists():
            Path(self.marker).touch()
            original = TrainingSession.checkpoint

            def checkpoint(session):
                original(session)
                Path(self.marker).write_text(str(session.run.path))
                os.kill(os.getpid(), signal.SIGKILL)

            TrainingSession.checkpoint = checkpoint
        return self.task()


# --- a real browser (the serve page and the report's layout) -----------------------------------------------------
CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]


def browser_or_skip(chromium: str | None = None) -> None:
    """Playwright driving Debian's Chromium; .ci/run sets SYNTHAUG_REQUIRE_BROWSER=1 so CI fails instead of skipping."""
    chromium = chromium or CHROMIUM
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package (dev extra)"
    if missing is None and not Path(chromium).exists():
        missing = f"{chromium} (apt-get install chromium chromium-driver)"
    if missing:
        if os.environ.get("SYNTHAUG_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required but {missing} is missing")
        pytest.skip(f"browser test needs {missing}")


def launch_chromium(playwright):
    """Headless Debian Chromium with the flags a container needs."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
