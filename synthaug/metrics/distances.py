"""Feature-array plumbing shared by the sample-quality metrics: validation and chunked distances.

Every quality metric takes ``[N, D]`` feature arrays (numpy or torch) and works in float64: FID subtracts
traces of similar size and KID/MMD subtract kernel sums of similar size, so float32 rounding would show in
the result. Distance matrices are never held whole: 10k x 10k float64 is 800 MB, so rows go in chunks.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

DEFAULT_CHUNK = 2048  # rows per distance block: 2048 x 10k float64 = 160 MB at most


def as_features(x: ArrayLike, name: str = "features", min_rows: int = 1, check_finite: bool = True) -> torch.Tensor:
    """A float64 CPU tensor view/copy of a 2-D feature array, with an error naming `name` when it is not one.

    ``check_finite=False`` is for callers that check a reduction of the data instead (cheaper).
    """
    if not isinstance(x, (np.ndarray, torch.Tensor)):
        raise TypeError(f"{name} must be a numpy array or torch tensor of shape [N, D], got {type(x).__name__}")
    t = torch.as_tensor(x).detach()
    if t.ndim != 2:
        raise ValueError(f"{name} must have shape [N, D], got {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {t.shape[0]}")
    if check_finite and not torch.isfinite(t).all():  # on the input dtype: half the memory traffic for float32 features
        raise ValueError(f"{name} contains NaN or infinite values")
    return t.to(device="cpu", dtype=torch.float64)


def check_same_dim(a: torch.Tensor, b: torch.Tensor, names: tuple[str, str] = ("real", "fake")) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} and {names[1]} features differ in dimension: {a.shape[1]} vs {b.shape[1]}")


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(dim=1)


def distance_block(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor | None = None,
                   b_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean distances between the rows of `a` and `b` through one matrix product.

    |a|^2 + |b|^2 - 2 a.b loses about |a|^2 * 1e-16 absolute in float64, far below any feature-space
    distance we compare; clamping at 0 removes the tiny negatives that rounding leaves on the diagonal.
    """
    return squared_distance_block(a, b, a_sq, b_sq).sqrt_()


def squared_distance_block(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor | None = None,
                           b_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances between the rows of `a` and `b` (see `distance_block`)."""
    a_sq = squared_norms(a) if a_sq is None else a_sq
    b_sq = squared_norms(b) if b_sq is None else b_sq
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return d2.clamp_min_(0.0)


def pairwise_distances(a: ArrayLike, b: ArrayLike | None = None) -> np.ndarray:
    """The full distance matrix (small inputs only: tests, plots); large inputs use the chunked reducers."""
    ta = as_features(a, "a")
    tb = ta if b is None else as_features(b, "b")
    check_same_dim(ta, tb, ("a", "b"))
    return distance_block(ta, tb).numpy()


def nearest_neighbours(query: ArrayLike, reference: ArrayLike | None = None, k: int = 1,
                       chunk_size: int = DEFAULT_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of the k nearest `reference` rows of every `query` row, nearest first.

    With ``reference=None`` the query set is searched against itself and each row's own entry is
    excluded (a duplicate elsewhere in the set still counts, at distance 0).
    Returns ``(distances [N, k], indices [N, k])``.
    """
    q = as_features(query, "query")
    self_search = reference is None
    ref = q if self_search else as_features(reference, "reference")
    check_same_dim(q, ref, ("query", "reference"))
    available = ref.shape[0] - (1 if self_search else 0)
    if not 1 <= k <= available:
        raise ValueError(f"k must be between 1 and {available} (the number of candidate neighbours), got {k}")
    ref_sq = squared_norms(ref)
    dists, idx = [], []
    for start in range(0, q.shape[0], chunk_size):
        block = distance_block(q[start:start + chunk_size], ref, b_sq=ref_sq)
        if self_search:
            rows = torch.arange(block.shape[0])
            block[rows, rows + start] = float("inf")
        values, indices = torch.topk(block, k, dim=1, largest=False, sorted=True)
        dists.append(values)
        idx.append(indices)
    return torch.cat(dists).numpy(), torch.cat(idx).numpy()


def kth_neighbour_distance(x: ArrayLike, k: int, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Distance from each row to its k-th nearest other row of the same set: the k-NN 'radius'."""
    dists, _ = nearest_neighbours(x, None, k=k, chunk_size=chunk_size)
    return dists[:, -1]
