import csv
import json

import pytest

from synthaug.cli.main import main


def test_train_command_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "digits", "--per-class", "20", "--model", "small-cnn", "--steps", "30",
                 "--batch-size", "32", "--seed", "0", "--augment", "crop", "--no-progress", "--out", str(out)])
    assert code == 0
    for name in ("config.json", "metrics.json", "predictions.csv", "confusion_matrix.png", "model.safetensors",
                 "checkpoint.safetensors", "log.txt", "metrics.jsonl"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["per_class"] == 20 and config["train"]["steps"] == 30 and config["train"]["augment"] == ["crop"]
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "per_class", "confusion_matrix"):
        assert key in metrics
    assert metrics["train_size"]["real"] == 200
    with open(out / "predictions.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["index", "y_true", "y_pred"] and len(rows[0]) == 3 + 10
    assert len(rows) - 1 == metrics["n"] == 540
    correct = sum(r[1] == r[2] for r in rows[1:])
    assert correct / 540 == pytest.approx(metrics["accuracy"])
    assert metrics["accuracy"] > 0.5  # 30 steps on 200 digits already learns
    assert "run folder" in capsys.readouterr().out


def test_train_refuses_to_overwrite_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", "digits", "--per-class", "10", "--steps", "4", "--batch-size", "16", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2  # already holds a run
    assert main(args + ["--resume"]) == 0


def test_bad_input_gives_one_line_errors(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--per-class", "5000", "--out", str(tmp_path / "a")]) == 2
    assert "has only" in capsys.readouterr().err
    assert main(["train", "--dataset", "nosuch", "--out", str(tmp_path / "b")]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
    assert main(["train", "--dataset", "digits", "--augment", "spin", "--out", str(tmp_path / "c")]) == 2
    assert "augment" in capsys.readouterr().err


def test_datasets_command_lists_registry(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "available" in out and "cifar10" in out
