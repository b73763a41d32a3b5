import csv
from pathlib import Path

import pytest

from synthaug.config import from_dict, load_yaml
from helpers import killed_on_call, tiny_config
from synthaug.experiments import ExperimentConfig, load_experiment_config, run_experiment
from synthaug.experiments.kinds import BASELINE

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))
SECTIONS = ["Does synthetic data help? (headline)", "Synthetic-set quality", "Samples: real vs synthetic", "Generator training",
            "Confusion matrices", "Real/synthetic mix: accuracy vs p_real", "Data efficiency", "Transfer:",
            "Class imbalance", "GAN optimisers", "Feature space: PCA", "Cost"]


def test_tiny_experiment_writes_results_summary_and_full_report(tiny_run):
    out, cfg, summary = tiny_run
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["experiment", "arm", "seed", "metric", "value", "group", "generator", "mixing", "p_real",
                             "strength", "per_image", "budget", "view"]
    p_real = {(r["generator"], r["p_real"], r["group"]) for r in rows if r["experiment"] == "p-real" and r["arm"] != BASELINE}
    assert p_real == {("cgan", "0.0", "p_real"), ("cgan", "0.5", "p_real"), ("cgan", "1.0", "p_real")}  # fields, as made
    experiments = {r["experiment"] for r in rows}
    assert {"compare", "p-real", "transfer", "data-efficiency", "optimizers", "imbalance", "quality"} <= experiments
    base = [r for r in rows if r["experiment"] == "compare" and r["arm"].startswith("real + classical augmentation")
            and r["metric"] == "accuracy"]
    assert sorted(int(r["seed"]) for r in base) == [0, 1]
    compare = summary["compare"]
    arm = "real + classical + cgan (add)"
    assert compare["arms"][arm]["accuracy"]["n"] == 2
    assert "t_p" in compare["tests"][arm]["accuracy"] and "wilcoxon_p" in compare["tests"][arm]["accuracy"]
    assert set(summary["data-efficiency"]["labels_saved"]) == {"cgan"}
    assert {"cas", "fid", "train_seconds"} <= set(summary["optimizers"]["arms"]["cgan-adam"])
    assert "minority_recall" in summary["imbalance"]["arms"]["real + random oversampling"]
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for section in SECTIONS:
        assert section in md, section
    assert "data:image/png;base64," in html and "<img src='figures" not in html  # self-contained
    assert summary["data-efficiency"]["fields"]["cgan@12"] == {"group": "budget", "generator": "cgan", "mixing": "add",
                                                               "budget": 12, "view": "equal_steps"}
    for figure in ("forest.png", "p-real.png", "data-efficiency.png"):  # drawn from the arms' fields
        assert (out / "figures" / figure).is_file(), figure
    for figure in (out / "figures").glob("*.png"):
        assert figure.stat().st_size > 1000


def test_cached_rerun_does_no_training(tiny_run, monkeypatch):
    out, cfg, summary = tiny_run
    from synthaug.training import loop

    def refuse(*args, **kwargs):
        raise AssertionError("a finished step was re-run")

    monkeypatch.setattr(loop, "fit", refuse)
    monkeypatch.setattr("synthaug.training.classify.fit", refuse)
    for cls in __import__("synthaug.generators", fromlist=["GENERATORS"]).GENERATORS._factories.values():
        monkeypatch.setattr(cls, "fit", refuse)
    again = run_experiment(cfg, out, report=False)
    assert again["_meta"]["steps_ran"] == 0 and again["_meta"]["steps_reused"] > 0
    assert again["compare"]["arms"] == summary["compare"]["arms"]


def test_killed_experiment_loses_nothing_finished(tmp_path, monkeypatch):
    """Kill an experiment in its second classifier; the re-run reuses the first and finishes."""
    cfg = tiny_config(kinds=["compare"], seeds=[0], generators=[])
    from synthaug.training import classify

    original = classify.train_on_splits
    monkeypatch.setattr(classify, "train_on_splits", killed_on_call(original, 2))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path, report=False)
    monkeypatch.setattr(classify, "train_on_splits", original)
    summary = run_experiment(cfg, tmp_path, report=False)
    assert summary["_meta"]["steps_reused"] == 1 and summary["_meta"]["steps_ran"] == 1


def test_fallback_dataset_notice(tmp_path, capsys):
    cfg = tiny_config(kinds=["compare"], seeds=[0], generators=[],
                      data={"dataset": "fashion-mnist", "data_root": str(tmp_path / "none"), "per_class": 5},
                      fallback_data={"dataset": "digits", "per_class": 5})
    summary = run_experiment(cfg, tmp_path / "out", report=True)
    assert summary["_meta"]["dataset"] == "digits"
    assert "NOTICE: fashion-mnist is not available here" in capsys.readouterr().err
    assert "NOTICE" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_validates(path):
    cfg = load_experiment_config(path)
    assert cfg.kinds and cfg.seeds
    raw = load_yaml(path)
    assert raw["name"] == cfg.name
    from synthaug.generators import GENERATORS

    for spec in cfg.generators:  # generator configs must fit their dataclass too
        from_dict(GENERATORS.resolve(spec.generator)[0].Config, spec.config)


def test_config_errors_name_the_field():
    from synthaug.config import ConfigError

    with pytest.raises(ConfigError, match="kinds: unknown"):
        tiny_config(kinds=["magic"])
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ExperimentConfig, {"nmae": "x"})


def test_oversampling_brings_every_class_to_the_largest_with_its_own_images():
    import torch

    from synthaug.data import ImageDataset
    from synthaug.experiments.kinds import _oversample

    g = torch.Generator().manual_seed(0)
    counts = {"a": 30, "b": 7, "c": 12}
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts.values())])
    images = torch.randint(0, 256, (len(labels), 1, 6, 6), generator=g, dtype=torch.uint8)  # every image distinct
    train = ImageDataset(images, labels, list(counts), name="imbalanced")
    missing = {name: 30 - n for name, n in counts.items()}
    extra = _oversample(train, missing, seed=3)
    assert extra.class_counts() == [0, 23, 18]
    assert [a + b for a, b in zip(train.class_counts(), extra.class_counts())] == [30, 30, 30]
    for img, label in zip(extra.images, extra.labels):  # each copy is a real image of its own class
        same = (train.images == img).flatten(1).all(1).nonzero().squeeze(1)
        assert len(same) == 1 and int(train.labels[same[0]]) == int(label)
    again = _oversample(train, missing, seed=3)
    assert torch.equal(again.images, extra.images)  # seeded
    assert not torch.equal(_oversample(train, missing, seed=4).images, extra.images)
