import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One thread: tiny test models run faster on one, and it keeps tests immune to a busy machine
# (two OpenMP threads on two shared cores can slow a step 30x).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_splits():
    from synthaug.data import DataConfig, load_data

    return load_data(DataConfig("digits"))


@pytest.fixture
def tiny_dataset():
    """3 classes of 16x16 grey images that differ by where a bright bar sits: learnable in a few steps."""
    from helpers import make_tiny_dataset

    return make_tiny_dataset()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny experiment with every kind, shared by the tests that read its files."""
    from helpers import tiny_config
    from synthaug.experiments import run_experiment

    out = tmp_path_factory.mktemp("exp")
    cfg = tiny_config()
    summary = run_experiment(cfg, out)
    return out, cfg, summary
