"""FID and KID: synthaug.metrics against torchmetrics on the same feature arrays, in one process.

Both sides get identical features (float32, as a network emits them): 10k real and 10k fake rows of
ReLU-like activations (non-negative, correlated, full-rank covariance with a 1/i spectrum; shifted and
rescaled for the fake set), for each feature dimension asked. For each we print the two values, their relative difference and the time
ratio. torchmetrics draws its KID subsets from the global torch RNG; to compare values on the *same*
subsets we replay its permutations and evaluate our per-subset estimator (`polynomial_mmd2`) on them.
Times are those of our public `kid()` (same number and size of subsets, its own seeded draws), in full
float64 and with the opt-in float32 Gram matrices; those two use the same seed, hence the same subsets,
so their difference is the float32 rounding alone. Run:

    .venv/bin/python benchmarks/fid_kid.py [--n 10000] [--dims 512 2048] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np
import torch
from torch import nn


class GivenFeatures(nn.Module):
    """torchmetrics 'feature extractor' returning its input, so that it sees exactly our arrays."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def make_features(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Real and fake feature sets shaped like pooled CNN activations: float32, >= 0, correlated, and with a
    full-rank covariance whose spectrum decays like 1/i (as InceptionV3's pool3 features on 10k images).

    The spectrum matters for timing: a general eigensolver (torchmetrics' FID) converges much faster on
    low-rank covariances than on full-rank ones.
    """
    rng = np.random.default_rng(seed)
    scale = (np.arange(1, dim + 1) ** -0.5).astype(np.float32)
    mixing = scale[:, None] * rng.normal(size=(dim, dim)).astype(np.float32) / np.sqrt(dim)
    real = np.maximum(rng.normal(size=(n, dim)).astype(np.float32) @ mixing + 0.05, 0.0)
    fake = np.maximum(1.1 * (rng.normal(size=(n, dim)).astype(np.float32) @ mixing) + 0.06, 0.0)
    return real.astype(np.float32), fake.astype(np.float32)  # float64 scalars above promote (NEP 50)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def torchmetrics_fid(real: np.ndarray, fake: np.ndarray, batch: int = 1000) -> float:
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=GivenFeatures(real.shape[1]))
    for start in range(0, len(real), batch):  # updates in batches, as an evaluation loop feeds it
        metric.update(torch.from_numpy(real[start:start + batch]), real=True)
        metric.update(torch.from_numpy(fake[start:start + batch]), real=False)
    return float(metric.compute())


def torchmetrics_kid(real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int, seed: int) -> tuple[float, float]:
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        metric = KernelInceptionDistance(feature=GivenFeatures(real.shape[1]), subsets=subsets, subset_size=subset_size)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    torch.manual_seed(seed)
    mean, std = metric.compute()
    return float(mean), float(std)


def ours_kid_on_torchmetrics_subsets(real: np.ndarray, fake: np.ndarray, subsets: int, subset_size: int,
                                     seed: int) -> tuple[float, float]:
    """Our unbiased polynomial MMD^2 on the subsets torchmetrics drew (its randperm sequence, replayed)."""
    from synthaug.metrics import polynomial_mmd2

    torch.manual_seed(seed)
    real_t, fake_t = torch.from_numpy(real), torch.from_numpy(fake)
    values = []
    for _ in range(subsets):
        real_idx = torch.randperm(len(real))[:subset_size]
        fake_idx = torch.randperm(len(fake))[:subset_size]
        values.append(polynomial_mmd2(real_t[real_idx], fake_t[fake_idx]))
    return float(np.mean(values)), float(np.std(values))


def sqrt_step(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """The distance from given statistics alone (the matrix square root): ours, torchmetrics', scipy's sqrtm."""
    import scipy.linalg
    from torchmetrics.image.fid import _compute_fid

    from synthaug.metrics import feature_statistics, frechet_distance

    a, b = feature_statistics(real), feature_statistics(fake)
    out: dict[str, float] = {}
    out["step_ours"], out["step_ours_s"] = timed(lambda: frechet_distance(a.mu, a.sigma, b.mu, b.sigma))
    tensors = [torch.from_numpy(x) for x in (a.mu, a.sigma, b.mu, b.sigma)]
    out["step_torchmetrics"], out["step_torchmetrics_s"] = timed(lambda: float(_compute_fid(*tensors)))
    if real.shape[1] <= 512:  # pytorch-fid's way; minutes at 2048 on 2 cores
        def with_sqrtm() -> float:
            covmean = scipy.linalg.sqrtm(a.sigma @ b.sigma).real
            return float(((a.mu - b.mu) ** 2).sum() + np.trace(a.sigma) + np.trace(b.sigma) - 2 * np.trace(covmean))
        out["step_scipy_sqrtm"], out["step_scipy_sqrtm_s"] = timed(with_sqrtm)
    return out


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def bench_dim(dim: int, args: argparse.Namespace) -> dict[str, Any]:
    from synthaug.metrics import fid_from_features, kid

    real, fake = make_features(args.n, dim, args.seed)
    row: dict[str, Any] = {"dim": dim, "n": args.n}
    row["fid_ours"], row["fid_ours_s"] = timed(lambda: fid_from_features(real, fake))
    row["fid_torchmetrics"], row["fid_torchmetrics_s"] = timed(lambda: torchmetrics_fid(real, fake))
    row.update(sqrt_step(real, fake))
    print(f"  d={dim} FID done", flush=True)
    (tm_mean, tm_std), row["kid_torchmetrics_s"] = timed(
        lambda: torchmetrics_kid(real, fake, args.kid_subsets, args.kid_subset_size, args.seed))
    row["kid_ours_same_subsets"], _ = ours_kid_on_torchmetrics_subsets(real, fake, args.kid_subsets,
                                                                        args.kid_subset_size, args.seed)
    row["kid_rel_diff"] = relative(row["kid_ours_same_subsets"], tm_mean)
    for gram in ("float64", "float32"):
        result, row[f"kid_ours_{gram}_s"] = timed(
            lambda: kid(real, fake, args.kid_subsets, args.kid_subset_size, seed=args.seed, gram_dtype=gram))
        row[f"kid_ours_{gram}"], row[f"kid_ours_{gram}_std"] = result.mean, result.std
        row[f"kid_{gram}_speedup"] = row["kid_torchmetrics_s"] / row[f"kid_ours_{gram}_s"]
    row["kid_float32_gram_rel_diff"] = relative(row["kid_ours_float32"], row["kid_ours_float64"])
    row.update(kid_torchmetrics=tm_mean, kid_torchmetrics_std=tm_std)
    row["fid_rel_diff"] = relative(row["fid_ours"], row["fid_torchmetrics"])
    row["fid_speedup"] = row["fid_torchmetrics_s"] / row["fid_ours_s"]
    return row


def warm_up() -> None:
    """One small run of each path first: library loading and MKL/OpenBLAS first-call set-up are not timed."""
    from synthaug.metrics import fid_from_features, kid

    real, fake = make_features(300, 32, 1)
    fid_from_features(real, fake)
    kid(real, fake, subsets=2, subset_size=100)
    kid(real, fake, subsets=2, subset_size=100, gram_dtype="float32")
    torchmetrics_fid(real, fake, batch=100)
    torchmetrics_kid(real, fake, 2, 100, 0)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torchmetrics

    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "torchmetrics": torchmetrics.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "load_average_start": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="rows in each of the real and fake sets")
    parser.add_argument("--dims", type=int, nargs="+", default=[512, 2048], help="feature dimensions to run")
    parser.add_argument("--kid-subsets", type=int, default=100)
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    info = machine()
    print(json.dumps(info))
    warm_up()
    rows = [bench_dim(dim, args) for dim in args.dims]
    info["load_average_end"] = os.getloadavg()
    print("\n| d | FID ours | FID torchmetrics | rel. diff | time ours / tm (s) | speed-up |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dim']} | {r['fid_ours']:.6f} | {r['fid_torchmetrics']:.6f} | {r['fid_rel_diff']:.1e} | "
              f"{r['fid_ours_s']:.2f} / {r['fid_torchmetrics_s']:.2f} | {r['fid_speedup']:.1f}x |")
    print("\n| d | distance from statistics: ours / torchmetrics (eigvals) / scipy sqrtm (s) | values |")
    print("|---|---|---|")
    for r in rows:
        scipy_time = f"{r['step_scipy_sqrtm_s']:.3f}" if "step_scipy_sqrtm_s" in r else "-"
        scipy_value = f" / {r['step_scipy_sqrtm']:.9f}" if "step_scipy_sqrtm" in r else ""
        print(f"| {r['dim']} | {r['step_ours_s']:.3f} / {r['step_torchmetrics_s']:.3f} / {scipy_time} | "
              f"{r['step_ours']:.9f} / {r['step_torchmetrics']:.9f}{scipy_value} |")
    print("\n| d | KID torchmetrics | KID ours, same subsets | rel. diff | KID ours (own subsets) f64 / f32 Gram "
          "| rel. diff f32 Gram | time tm / ours f64 / ours f32 Gram (s) | speed-up f64, f32 Gram |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dim']} | {r['kid_torchmetrics']:.7e} | {r['kid_ours_same_subsets']:.7e} | {r['kid_rel_diff']:.1e} | "
              f"{r['kid_ours_float64']:.7e} / {r['kid_ours_float32']:.7e} | {r['kid_float32_gram_rel_diff']:.1e} | "
              f"{r['kid_torchmetrics_s']:.2f} / {r['kid_ours_float64_s']:.2f} / {r['kid_ours_float32_s']:.2f} | "
              f"{r['kid_float64_speedup']:.2f}x, {r['kid_float32_speedup']:.2f}x |")
    print(f"\nload average: start {info['load_average_start']}, end {info['load_average_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "args": vars(args), "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
