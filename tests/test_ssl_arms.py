"""The semi-supervised arms of the unlabelled kind: FixMatch on the pool, FixMatch with synthetic images, and the
DPT route (a generator fitted on the FixMatch model's pseudo-labels of the pool), end to end on tiny digits."""

import json

import pytest
import torch

from helpers import tiny_config

CGAN = {"steps": 6, "batch_size": 8, "g_width": 8, "d_width": 8, "sample_every": 6, "checkpoint_every": 6, "log_every": 2}


def ssl_config(**unlabelled):
    return tiny_config(kinds=["unlabelled"], seeds=[0, 1],
                       data={"dataset": "digits", "per_class": 6, "classes": ["0", "1", "7"], "unlabelled": 90},
                       generators=[{"name": "dpt", "generator": "cgan", "pseudo_labels": True, "config": CGAN}],
                       unlabelled={"ssl": ["fixmatch"], "ssl_steps": 6, "ssl_ratio": 2, "ssl_threshold": 0.5,
                                   "dpt_tau": 0.0, "pseudo_label_tau": 0.0, "pseudo_label_max": 40,
                                   "ssl_synthetic": ["dpt-samples"], **unlabelled})


def test_fixmatch_and_dpt_arms_run_with_their_compute_and_the_generator_sees_pseudo_labels(tmp_path, monkeypatch):
    from synthaug.experiments import run_experiment
    from synthaug.experiments import steps as steps_module
    from synthaug.training.classify import load_classifier
    from synthaug.training.loop import predict_proba
    from synthaug.training.config import TrainConfig

    seen = []  # what every generator fit was given as its labelled data
    fit_generator = steps_module.generator_step

    def spy(cache, spec, data_cfg, real, *args, **kwargs):
        seen.append((real, kwargs.get("label")))
        return fit_generator(cache, spec, data_cfg, real, *args, **kwargs)

    monkeypatch.setattr(steps_module, "generator_step", spy)
    summary = run_experiment(ssl_config(), tmp_path)
    arms = summary["unlabelled"]["arms"]
    assert set(arms) == {"real + classical augmentation (baseline)", "real + pseudo-labelled pool",
                         "fixmatch on the pool (6 steps)", "dpt (DPT: pool pseudo-labelled by fixmatch) class samples",
                         "fixmatch + dpt-samples (6 steps)"}
    # compute beside accuracy: a consistency step sees 1 + 2 x ratio images per labelled one
    assert arms["fixmatch on the pool (6 steps)"]["images_seen"]["mean"] == 6 * 16 * (1 + 2 * 2)
    assert arms["real + classical augmentation (baseline)"]["images_seen"]["mean"] == 15 * 16
    artefacts = json.loads((tmp_path / "artefacts.json").read_text())
    assert set(artefacts["costs"]["train_seconds"]["unlabelled"]) == set(arms)
    md = (tmp_path / "report.md").read_text()
    cost_rows = [line for line in md.splitlines() if line.startswith("| fixmatch on the pool (6 steps)")]
    assert any("| 480 |" in line for line in cost_rows), md  # the compute table's images-seen column
    assert "DPT route" in md

    # each seed's DPT generator trained on the 18 labelled images + the pool labelled by that seed's FixMatch model
    # (named in the generator's label), never by true labels
    from dataclasses import replace

    from synthaug.data import load_data

    classifiers = tmp_path / "cache" / "classifiers"
    dpt_fits = [(real, label) for real, label in seen if label and label.startswith("dpt-")]
    assert len(dpt_fits) == 2, "one DPT generator per seed"
    for real, label in dpt_fits:
        teacher = classifiers / label.split("-", 2)[2]  # dpt-tau0-<fixmatch run folder>
        assert teacher.name.startswith("fixmatch-") and teacher.is_dir()
        seed = json.loads((teacher / "config.json").read_text())["train"]["seed"]  # its seed's labelled subset
        splits = load_data(replace(ssl_config().data, seed=seed))
        assert torch.equal(real.images[:18], splits.train.images) and torch.equal(real.labels[:18], splits.train.labels)
        pool = real.images[18:]
        assert len(pool) == 90  # dpt_tau 0: the whole pool
        predicted = predict_proba(load_classifier(teacher)[0], pool, TrainConfig(progress=False)).argmax(1)
        assert (torch.from_numpy(predicted) == real.labels[18:]).all(), "the pool's labels are not its teacher's predictions"


def test_a_synthetic_set_the_experiment_does_not_make_is_named_in_the_error(tmp_path):
    from synthaug.experiments import run_experiment

    with pytest.raises(ValueError, match="no synthetic set 'nope'.*dpt-samples"):
        run_experiment(ssl_config(ssl_synthetic=["nope"]), tmp_path, report=False)


def test_dpt_generator_needs_a_consistency_arm():
    with pytest.raises(ValueError, match="pseudo_labels"):
        ssl_config(ssl=[], ssl_synthetic=[])
