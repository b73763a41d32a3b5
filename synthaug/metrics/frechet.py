"""Frechet distance between Gaussian fits of two feature sets (FID when the features are InceptionV3's).

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

The only hard part is tr((S1 S2)^(1/2)). We write our own rather than call scipy.linalg.sqrtm (a Schur
method on a general matrix, pytorch-fid's way) or take eigenvalues of the non-symmetric S1 S2 as
torchmetrics does: both are general, iterative eigensolvers, slow on full-rank 2048 x 2048 covariances
(tens of seconds on 2 cores; docs/benchmarks.md). With any factor
S1 = F F^T, S1 S2 has the same non-zero eigenvalues as the symmetric positive semi-definite F^T S2 F, so
tr((S1 S2)^(1/2)) = sum of sqrt(eigvalsh(F^T S2 F)). F is a Cholesky factor: a plain one when S1 is
positive definite, a *pivoted* one (LAPACK dpstrf, as cheap) when it is singular (fewer samples than
dimensions, dead ReLU units): that stops at the numerical rank, so directions with zero variance add
exactly nothing instead of the sqrt(1e-16) noise a general eigensolver leaves per null direction.
A symmetric eigendecomposition *with* eigenvectors (for S1^(1/2)) would also work, at ~10x the cost of
the Cholesky factor (1.7 s vs 0.17 s at 2048 on 2 cores).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg.lapack import dpstrf

from synthaug.metrics.distances import ArrayLike, as_features, check_same_dim


@dataclass(frozen=True)
class FeatureStatistics:
    """Mean and (unbiased, ddof=1) covariance of a feature set: all FID needs of it, cacheable."""

    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64
    n: int  # number of feature rows the statistics came from


def feature_statistics(features: ArrayLike) -> FeatureStatistics:
    """Mean and sample covariance (ddof=1, as numpy.cov, torchmetrics and torch-fidelity use) in float64."""
    stats = _statistics(as_features(features, "features", min_rows=2, check_finite=False))
    if not (np.isfinite(stats.mu).all() and np.isfinite(stats.sigma).all()):
        raise ValueError("features contain NaN or infinite values")
    return stats


def _statistics(x: torch.Tensor) -> FeatureStatistics:
    mu = x.mean(dim=0)
    centred = x - mu  # centring first, unlike a running sum of x x^T, avoids cancellation for large means
    sigma = centred.T @ centred / (x.shape[0] - 1)
    sigma = 0.5 * (sigma + sigma.T)  # bitwise symmetric, whatever order the BLAS summed in
    return FeatureStatistics(mu=mu.numpy(), sigma=sigma.numpy(), n=x.shape[0])


def _as_float64(a: ArrayLike, name: str, ndim: int) -> torch.Tensor:
    t = torch.as_tensor(a).detach().to(device="cpu", dtype=torch.float64)
    if t.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _factor(sigma: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(F, order) with sigma[order][:, order] = F F^T and F of shape [d, numerical rank]; order None = identity.

    A plain Cholesky (torch/MKL) when sigma is clearly positive definite; otherwise LAPACK's pivoted
    Cholesky (dpstrf), which stops at the numerical rank. Both use dpstrf's tolerance, d * eps * max(diag).
    """
    d = sigma.shape[0]
    tolerance = d * np.finfo(np.float64).eps * float(sigma.diagonal().max()) if d else 0.0
    low, info = torch.linalg.cholesky_ex(sigma)
    if int(info) == 0 and float(low.diagonal().min()) ** 2 > tolerance:
        return low, None
    factor, pivots, rank, info = dpstrf(sigma.numpy(), lower=1)
    if info < 0:
        raise ValueError(f"LAPACK dpstrf rejected {name} (argument {-info})")
    order = torch.from_numpy(pivots.astype(np.int64) - 1)  # LAPACK pivots are 1-based
    return torch.from_numpy(np.tril(factor)[:, :rank]), order


def trace_sqrt_product(sigma1: ArrayLike, sigma2: ArrayLike) -> float:
    """tr((sigma1 sigma2)^(1/2)) for symmetric positive semi-definite matrices (covariances).

    Cholesky of sigma1 (pivoted, P^T S1 P = L L^T with L cut at the numerical rank r, when S1 is
    singular), then the eigenvalues of the r x r matrix L^T (P^T S2 P) L; sigma2 is factored instead
    when its rank is lower. The rank tolerance is LAPACK's default, d * eps * max(diag).
    """
    s1 = _as_float64(sigma1, "sigma1", 2)
    s2 = _as_float64(sigma2, "sigma2", 2)
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape[0] != s.shape[1]:
            raise ValueError(f"{name} must be a square covariance matrix, got shape {tuple(s.shape)}")
        if (s - s.T).abs().max() > 1e-8 * s.abs().max():
            raise ValueError(f"{name} is not symmetric: pass a covariance matrix (e.g. from feature_statistics)")
    return _trace_sqrt_product(s1, s2)


def _trace_sqrt_product(s1: torch.Tensor, s2: torch.Tensor) -> float:
    low, order = _factor(s1, "sigma1")
    other = s2
    if low.shape[1] == s1.shape[0]:
        # sigma1 has full rank: if sigma2 has lower rank, factor it instead (tr sqrt(S1 S2) = tr sqrt(S2 S1)).
        # The factored matrix's null space contributes exactly 0; the other's would add sqrt(rounding) ~1e-8.
        low2, order2 = _factor(s2, "sigma2")
        if low2.shape[1] < low.shape[1]:
            low, order, other = low2, order2, s1
    if low.shape[1] == 0:  # a zero covariance: S1 S2 = 0
        return 0.0
    if order is not None:
        other = other[order][:, order]
    middle = low.T @ other @ low
    middle = 0.5 * (middle + middle.T)  # exact symmetry for eigvalsh; the products left ~1e-16 asymmetry
    # torch's eigvalsh (MKL) rather than numpy's: ~20x faster here at d=2048 on 2 busy cores.
    return float(torch.linalg.eigvalsh(middle).clamp_min(0.0).sqrt().sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    Can come out a hair below zero (about -1e-12 relative) for identical inputs: that is rounding,
    left visible rather than clipped.
    """
    m1, m2 = _as_float64(mu1, "mu1", 1), _as_float64(mu2, "mu2", 1)
    s1, s2 = _as_float64(sigma1, "sigma1", 2), _as_float64(sigma2, "sigma2", 2)
    d = m1.shape[0]
    if m2.shape[0] != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu1 {tuple(m1.shape)}, sigma1 {tuple(s1.shape)}, "
                         f"mu2 {tuple(m2.shape)}, sigma2 {tuple(s2.shape)}")
    for name, sigma in (("sigma1", s1), ("sigma2", s2)):
        if (sigma - sigma.T).abs().max() > 1e-8 * sigma.abs().max():
            raise ValueError(f"{name} is not symmetric: pass a covariance matrix (e.g. from feature_statistics)")
    return _frechet(m1, s1, m2, s2)


def _frechet(m1: torch.Tensor, s1: torch.Tensor, m2: torch.Tensor, s2: torch.Tensor) -> float:
    mean_term = float(((m1 - m2) ** 2).sum())
    return mean_term + float(s1.trace() + s2.trace()) - 2.0 * _trace_sqrt_product(s1, s2)


def fid_from_statistics(real: FeatureStatistics, fake: FeatureStatistics) -> float:
    """FID from two cached statistics (e.g. a stored reference set against a fresh synthetic set)."""
    return frechet_distance(real.mu, real.sigma, fake.mu, fake.sigma)


def fid_from_features(real: ArrayLike, fake: ArrayLike) -> float:
    """FID between two feature sets ([N, D] and [M, D], N, M >= 2)."""
    # NaN / inf anywhere in a column reaches its mean, so checking the statistics (D numbers) replaces a
    # pass over all N x D features
    r = as_features(real, "real", min_rows=2, check_finite=False)
    f = as_features(fake, "fake", min_rows=2, check_finite=False)
    check_same_dim(r, f)
    real_stats, fake_stats = _statistics(r), _statistics(f)
    for name, stats in (("real", real_stats), ("fake", fake_stats)):
        if not (np.isfinite(stats.mu).all() and np.isfinite(stats.sigma).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    return _frechet(*(torch.from_numpy(a) for a in (real_stats.mu, real_stats.sigma, fake_stats.mu, fake_stats.sigma)))
