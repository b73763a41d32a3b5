"""A user's mistake never ends in a traceback: exit code 2 and ONE line on stderr, starting with `error:`,
naming the bad value. Each row is a mistake run end to end through the command line."""

import json

import pytest

from synthaug.cli.main import main

GEN = ["--set", "g_width=8", "--set", "d_width=8", "--set", "sample_every=5", "--set", "checkpoint_every=5"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished classifier run, generator run and synthetic set (digits 0, 1, 2) to make mistakes with."""
    root = tmp_path_factory.mktemp("mistakes")
    train = ["train", "--dataset", "digits", "--per-class", "10", "--steps", "4", "--batch-size", "16", "--no-progress",
             "--out", str(root / "clf")]
    assert main(train) == 0
    assert main(["generator", "fit", "--dataset", "digits", "--classes", "0,1,2", "--per-class", "10", "--generator", "cgan",
                 "--steps", "5", "--batch-size", "8", "--no-progress", "--out", str(root / "gen"), *GEN]) == 0
    assert main(["synth", "make", "--generator-run", str(root / "gen"), "--per-class", "4", "--out", str(root / "syn")]) == 0
    (root / "misspelt.yaml").write_text("name: x\nseeds: [0]\nclasifier: {steps: 5}\n")
    return root, train


def _one_line_error(capsys, argv, *must_name):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for text in must_name:
        assert text in lines[0], (text, lines[0])
    return lines[0]


MISTAKES = {
    "unknown dataset": (lambda r, t: ["train", "--dataset", "nosuch", "--out", str(r / "a")], ["'nosuch'", "digits"]),
    "too many per class": (lambda r, t: ["train", "--dataset", "digits", "--per-class", "5000", "--out", str(r / "b")], ["5000"]),
    "unknown augmentation": (lambda r, t: ["train", "--dataset", "digits", "--augment", "spin", "--out", str(r / "c")], ["spin", "flip"]),
    "unknown model": (lambda r, t: ["train", "--dataset", "digits", "--model", "bignet", "--out", str(r / "d")], ["bignet", "small-cnn"]),
    "bad choice": (lambda r, t: ["train", "--dataset", "digits", "--optimizer", "adamm", "--out", str(r / "e")], ["adamm", "adamw"]),
    "not a number": (lambda r, t: ["train", "--dataset", "digits", "--steps", "many", "--out", str(r / "f")], ["many"]),
    "run folder exists": (lambda r, t: t, ["--resume", "--out"]),
    "resume with other settings": (lambda r, t: [*t, "--resume", "--lr", "0.1"], ["train.lr", "0.1"]),
    "missing config file": (lambda r, t: ["train", "--config", str(r / "nope.yaml"), "--out", str(r / "g")], ["nope.yaml"]),
    "misspelt experiment key": (lambda r, t: ["run", str(r / "misspelt.yaml"), "--out", str(r / "h")], ["clasifier", "did you mean 'classifier'"]),
    "not a generator run": (lambda r, t: ["synth", "make", "--generator-run", str(r / "clf"), "--per-class", "2",
                                          "--out", str(r / "i")], ["clf", "generator fit"]),
    "bad filter value": (lambda r, t: ["synth", "make", "--generator-run", str(r / "gen"), "--per-class", "2",
                                       "--filter", "confidence:tau=2", "--out", str(r / "j")], ["tau", "2"]),
    "unknown filter": (lambda r, t: ["synth", "make", "--generator-run", str(r / "gen"), "--per-class", "2",
                                     "--filter", "sharpness", "--out", str(r / "k")], ["sharpness", "confidence"]),
    "unknown class": (lambda r, t: ["synth", "make", "--generator-run", str(r / "gen"), "--per-class", "2",
                                    "--classes", "0,9", "--out", str(r / "l")], ["'9'"]),
    "non-positive count": (lambda r, t: ["synth", "make", "--generator-run", str(r / "gen"), "--per-class", "0",
                                         "--out", str(r / "m")], ["per_class", "0"]),
    "synthetic set of another dataset": (lambda r, t: ["synth", "evaluate", "--synthetic", str(r / "syn"), "--dataset", "digits",
                                                       "--out", str(r / "n")], ["synthetic classes", "digits"]),
    "filter classifier of other classes": (lambda r, t: ["synth", "make", "--generator-run", str(r / "gen"), "--per-class", "2",
                                                         "--filter", "confidence:tau=0.1", "--classifier-run", str(r / "clf"),
                                                         "--out", str(r / "o")], ["classes"]),
    "unknown generator setting": (lambda r, t: ["generator", "fit", "--dataset", "digits", "--generator", "cgan",
                                                "--set", "g_widht=8", "--out", str(r / "p")], ["g_widht"]),
    "sample from a missing run": (lambda r, t: ["generator", "sample", "--run", str(r / "nothing"), "--per-class", "2",
                                                "--out", str(r / "q")], ["nothing"]),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_user_mistakes_end_in_one_line_errors(mistake, runs, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHAUG_DATA", str(tmp_path / "cache"))
    root, train = runs
    argv, names = MISTAKES[mistake]
    _one_line_error(capsys, argv(root, train), *names)


def test_train_resume_of_a_finished_run_logs_it_adds_no_steps_and_gives_the_same_metrics(runs, capsys):
    root, train = runs
    before = json.loads((root / "clf" / "metrics.json").read_text())
    assert main([*train, "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().err
    after = json.loads((root / "clf" / "metrics.json").read_text())
    assert after["training"]["steps"] == before["training"]["steps"] == 4
    assert after["accuracy"] == before["accuracy"] and after["confusion_matrix"] == before["confusion_matrix"]
    assert main([*train, "--resume", "--threads", "1"]) == 0  # where it runs may change
