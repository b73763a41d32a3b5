"""benchmarks/gpu_check.py, the prepared GPU check, run on a CPU with --quick so that it cannot rot before a GPU
is lent: every part runs and reports every figure, and a part that raises or overruns is reported as such while
the others still run."""

import importlib.util
import json
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture(scope="module")
def gpu_check():
    """The script as a module (its top level imports only the standard library), sys.path left as it was."""
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    sys.path[:] = saved
    return module


def run_check(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=3600)  # a shared machine can stretch seconds of work to minutes


def write_cifar(root: Path, broken: bool = False) -> Path:
    """CIFAR-10's python batches with 20 random images each (or, broken, files of garbage under the same names)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_FILES:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(20)]}
        (folder / name).write_bytes(b"not a pickle" if broken else pickle.dumps(batch))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return root


def test_quick_check_runs_every_part_and_reports_the_one_that_raises(tmp_path, gpu_check):
    out = tmp_path / "check.json"
    proc = run_check("--quick", "--out", out, "--cifar-root", write_cifar(tmp_path / "broken", broken=True))
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a failed part fails the check, after all parts ran
    report = json.loads(out.read_text())
    parts = report["parts"]
    assert list(parts) == list(gpu_check.PARTS)
    assert parts["cifar"]["status"] == "failed"
    assert "cannot read CIFAR batch" in parts["cifar"]["error"]
    assert "DatasetError" in "\n".join(parts["cifar"]["log_tail"])  # the traceback's end, in the JSON
    assert "Traceback" in out.with_suffix(".log").read_text()  # and all of it beside
    assert {name: r["status"] for name, r in parts.items() if name != "cifar"} == {
        name: "ok" for name in parts if name != "cifar"}, {n: r["error"] for n, r in parts.items()}

    metrics = report["metrics"]
    assert set(metrics) == {key for part in gpu_check.PARTS.values() for key in part.keys}
    for key, m in metrics.items():
        if m["part"] == "cifar":
            assert m["value"] is None and m["status"] == "failed"
            continue
        # requests/s may be 0 on a starved machine (no request done within the 0.4 s level); all else is work done
        assert math.isfinite(m["value"]) and (m["value"] >= 0 if key.startswith("serve.") else m["value"] > 0), key
        if key.startswith(("classifier.", "sd.", "ddp.")):  # the figures measured against the plain way
            assert m["reference"] > 0 and m["ratio"] == pytest.approx(m["value"] / m["reference"]), key
    assert "| cifar | **FAILED**" in proc.stdout
    assert "| sd | sd-text tiny" in proc.stdout
    assert report["meta"]["quick"] is True and report["meta"]["sizes"]["sd_preset"] == "tiny"


def test_cifar_runs_when_the_files_are_there_and_is_skipped_with_a_clear_line_when_not(tmp_path):
    out = tmp_path / "cifar.json"
    proc = run_check("--quick", "--parts", "cifar", "--out", out, "--cifar-root", write_cifar(tmp_path / "data"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads(out.read_text())["metrics"]
    assert 0 <= metrics["cifar.accuracy"]["value"] <= 100 and metrics["cifar.accuracy"]["reference"] == 94.0
    assert metrics["cifar.train_seconds"]["value"] > 0
    assert metrics["classifier.small-cnn.fp32"]["status"] == "not run"

    proc = run_check("--quick", "--parts", "cifar", "--out", out, "--cifar-root", tmp_path / "empty")
    assert proc.returncode == 0, proc.stdout + proc.stderr  # absent data is not a fault
    part = json.loads(out.read_text())["parts"]["cifar"]
    assert part["status"] == "skipped"
    assert str(tmp_path / "empty" / "cifar-10-batches-py") in part["error"] and "--cifar-root" in part["error"]
    assert "| cifar | **SKIPPED**" in proc.stdout


def test_a_part_over_its_limit_is_killed_and_reported(tmp_path):
    out = tmp_path / "limit.json"
    start = time.perf_counter()
    proc = run_check("--quick", "--parts", "diffusion", "--limit", "diffusion=0.5", "--out", out)
    assert time.perf_counter() - start < 60
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    assert report["parts"]["diffusion"]["status"] == "timeout"
    assert report["metrics"]["diffusion.fit"]["value"] is None


def test_the_part_limits_fit_the_eight_minute_budget(gpu_check):
    assert sum(part.limit_s for part in gpu_check.PARTS.values()) <= gpu_check.BUDGET_S == 8 * 60
