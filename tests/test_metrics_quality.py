"""Sample-quality metrics: known answers, and agreement with torchmetrics / torch-fidelity / prdc / scipy
on the same feature arrays."""

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from scipy.spatial.distance import cdist, pdist
from torch import nn

from synthaug.metrics import (
    feature_statistics,
    fid_from_features,
    frechet_distance,
    inception_score,
    kid,
    median_bandwidth,
    memorisation_ratio,
    mmd_permutation_test,
    mmd_rbf,
    nearest_neighbours,
    per_class,
    polynomial_mmd2,
    prdc,
    precision_recall,
    trace_sqrt_product,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Small matrices: on 2 cores shared with other jobs, OpenMP's second thread makes them ~100x slower."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):  # numpy's OpenBLAS, used by the reference implementations
        yield
    torch.set_num_threads(threads)


class GivenFeatures(nn.Module):
    """A torchmetrics 'feature extractor' that returns its input: lets the references see our features."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _features(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mixing) * scale + shift


def _random_spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, 2 * d))
    return a @ a.T / (2 * d)


# ---------------------------------------------------------------- FID

def test_fid_of_identical_sets_is_zero():
    x = _features(400, 32, 0)
    assert abs(fid_from_features(x, x)) < 1e-9 * np.trace(np.cov(x, rowvar=False))


def test_frechet_distance_matches_the_analytic_value_for_diagonal_gaussians():
    a, b = np.array([1.0, 4.0, 9.0, 0.0]), np.array([4.0, 1.0, 9.0, 2.0])  # one zero variance: singular S1
    mu1, mu2 = np.zeros(4), np.array([1.0, -2.0, 0.0, 0.5])
    expected = mu2 @ mu2 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_scipy_sqrtm_for_general_covariances():
    s1, s2 = _random_spd(20, 1), _random_spd(20, 2)
    mu1, mu2 = np.random.default_rng(3).normal(size=(2, 20))
    reference = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(sqrtm(s1 @ s2)).real
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-10)


def test_trace_sqrt_product_with_rank_deficient_covariance():
    s1 = np.cov(_features(10, 30, 4), rowvar=False)  # rank 9 in 30 dimensions
    s2 = _random_spd(30, 5)
    reference = np.trace(sqrtm(s1 @ s2)).real
    # a general solver adds ~sqrt(1e-16) per null direction; ours adds nothing, so agree to ~1e-7
    assert trace_sqrt_product(s1, s2) == pytest.approx(reference, rel=1e-6)
    assert trace_sqrt_product(s1, s2) == pytest.approx(trace_sqrt_product(s2, s1), rel=1e-12)


def test_fid_of_sampled_gaussians_approaches_the_analytic_distance():
    rng = np.random.default_rng(6)
    s1, s2 = _random_spd(3, 7), _random_spd(3, 8)
    mu1, mu2 = np.zeros(3), np.array([0.5, 0.0, -0.5])
    x = rng.multivariate_normal(mu1, s1, size=50_000)
    y = rng.multivariate_normal(mu2, s2, size=50_000)
    analytic = frechet_distance(mu1, s1, mu2, s2)
    assert fid_from_features(x, y) == pytest.approx(analytic, rel=0.03)


def test_feature_statistics_match_numpy():
    x = _features(300, 16, 9, shift=100.0)  # a large mean tests the centring
    stats = feature_statistics(x)
    np.testing.assert_allclose(stats.mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    assert stats.n == 300


def test_fid_agrees_with_torchmetrics_and_torch_fidelity():
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _features(600, 48, 10), _features(500, 48, 11, shift=0.3, scale=1.2)
    ours = fid_from_features(real, fake)
    metric = FrechetInceptionDistance(feature=GivenFeatures(48))
    metric.set_dtype(torch.float64)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    assert ours == pytest.approx(metric.compute().item(), rel=1e-8)
    tf = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(real)),
                                  fid_features_to_statistics(torch.from_numpy(fake)), verbose=False)
    assert ours == pytest.approx(tf["frechet_inception_distance"], rel=1e-8)


def test_fid_errors_name_the_problem():
    with pytest.raises(ValueError, match="differ in dimension"):
        fid_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        fid_from_features(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        fid_from_features(np.full((5, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="not symmetric"):
        frechet_distance(np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2))


# ---------------------------------------------------------------- KID

def test_polynomial_mmd_agrees_with_torchmetrics_and_torch_fidelity():
    from torch_fidelity.metric_kid import kernel_mmd
    from torchmetrics.image.kid import poly_mmd

    x, y = _features(200, 24, 12), _features(200, 24, 13, shift=0.2)
    ours = polynomial_mmd2(x, y)
    assert ours == pytest.approx(poly_mmd(torch.from_numpy(x), torch.from_numpy(y)).item(), rel=1e-10)
    tf = kernel_mmd(x, y, kid_kernel="poly", kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None,
                    kid_kernel_poly_coef0=1)
    assert ours == pytest.approx(tf, rel=1e-10)


@pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features")
def test_kid_on_whole_sets_equals_torchmetrics():
    from torchmetrics.image.kid import KernelInceptionDistance

    real, fake = _features(150, 16, 14), _features(150, 16, 15, shift=0.3)
    # one subset as large as the sets: the references' random subset order cannot change the value
    metric = KernelInceptionDistance(feature=GivenFeatures(16), subsets=1, subset_size=150)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    mean, _ = metric.compute()
    ours = kid(real, fake, subsets=1, subset_size=150)
    assert ours.mean == pytest.approx(mean.item(), rel=1e-9)
    assert ours.std == 0.0


def test_kid_over_subsets_agrees_with_torch_fidelity_in_distribution():
    from torch_fidelity.metric_kid import kid_features_to_metric

    real, fake = _features(600, 16, 16), _features(600, 16, 17, shift=0.25)
    ours = kid(real, fake, subsets=50, subset_size=200, seed=1)
    tf = kid_features_to_metric(torch.from_numpy(real), torch.from_numpy(fake), kid_subsets=50, kid_subset_size=200,
                                verbose=False, rng_seed=2020)
    # different random subsets: the means agree within a few standard errors, the spreads roughly
    standard_error = np.hypot(ours.std, tf["kernel_inception_distance_std"]) / np.sqrt(50)
    assert abs(ours.mean - tf["kernel_inception_distance_mean"]) < 4 * standard_error
    assert ours.std == pytest.approx(tf["kernel_inception_distance_std"], rel=0.5)
    assert kid(real, fake, subsets=50, subset_size=200, seed=1) == ours  # seeded


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    same = kid(_features(400, 8, 18), _features(400, 8, 18)[::-1].copy() + 0, subsets=10, subset_size=100)
    a = np.random.default_rng(19).normal(size=(400, 8))
    b = np.random.default_rng(20).normal(size=(400, 8))
    null = kid(a, b, subsets=20, subset_size=200)
    shifted = kid(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(null.mean) < 3 * null.std + 1e-12
    assert shifted.mean > 10 * max(null.std, 1e-6)
    assert same.mean < 0.05 * shifted.mean


def test_kid_float32_gram_is_an_accurate_opt_in():
    real, fake = _features(300, 64, 41, shift=0.5), _features(300, 64, 42, shift=0.6)
    exact = kid(real, fake, subsets=5, subset_size=200, seed=3)
    fast = kid(real, fake, subsets=5, subset_size=200, seed=3, gram_dtype="float32")
    assert fast.mean == pytest.approx(exact.mean, rel=1e-5, abs=1e-4 * exact.std)
    with pytest.raises(ValueError, match="gram_dtype"):
        kid(real, fake, subsets=1, subset_size=10, gram_dtype="float16")


def test_kid_subset_size_checks():
    a = np.zeros((10, 3)) + np.arange(10)[:, None]
    with pytest.raises(ValueError, match="larger than the fake set"):
        kid(a, a[:5], subset_size=8)
    assert kid(a, a[:5], subsets=2, subset_size=None).subset_size == 5


# ---------------------------------------------------------------- Inception Score

def _dirichlet_probs(n, k, seed, concentration=0.3):
    return np.random.default_rng(seed).dirichlet(np.full(k, concentration), size=n)


def test_inception_score_known_answers():
    k = 4
    one_hot = np.eye(k)[np.arange(40) % k]
    assert inception_score(one_hot, splits=1).mean == pytest.approx(k)  # confident and balanced
    assert inception_score(np.full((40, k), 1.0 / k), splits=2).mean == pytest.approx(1.0)  # uninformative
    assert inception_score(np.eye(k)[np.zeros(40, int)], splits=1).mean == pytest.approx(1.0)  # one class only


def test_inception_score_agrees_with_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    probs = _dirichlet_probs(503, 10, 21)  # 503: splits of unequal size
    ours = inception_score(probs, splits=10)
    tf = isc_features_to_metric(torch.from_numpy(np.log(probs)), splits=10, shuffle=False)
    assert ours.mean == pytest.approx(tf["inception_score_mean"], rel=1e-10)
    assert ours.std == pytest.approx(tf["inception_score_std"], rel=1e-8)


@pytest.mark.filterwarnings("ignore:Metric .* will save all extracted features")
def test_inception_score_agrees_with_torchmetrics_given_its_shuffle():
    from torchmetrics.image.inception import InceptionScore

    probs = torch.from_numpy(_dirichlet_probs(500, 10, 22))
    metric = InceptionScore(feature=GivenFeatures(10), splits=5)
    metric.update(probs.log())
    torch.manual_seed(0)
    mean, std = metric.compute()
    torch.manual_seed(0)
    order = torch.randperm(500)  # torchmetrics shuffles with the global RNG; replay it
    ours = inception_score(probs[order], splits=5)
    assert ours.mean == pytest.approx(mean.item(), rel=1e-6)
    assert ours.std * np.sqrt(5 / 4) == pytest.approx(std.item(), rel=1e-5)  # torchmetrics: ddof=1


def test_inception_score_rejects_logits():
    with pytest.raises(ValueError, match="apply softmax"):
        inception_score(np.random.default_rng(0).normal(size=(20, 3)), splits=2)


# ---------------------------------------------------------------- precision / recall / density / coverage

def _brute_prdc(real, fake, k):
    """The papers' definitions, written out on full distance matrices."""
    d_rr, d_ff, d_fr = cdist(real, real), cdist(fake, fake), cdist(fake, real)
    np.fill_diagonal(d_rr, np.inf)
    np.fill_diagonal(d_ff, np.inf)
    r_real = np.sort(d_rr, axis=1)[:, k - 1]
    r_fake = np.sort(d_ff, axis=1)[:, k - 1]
    precision = (d_fr <= r_real[None, :]).any(axis=1).mean()
    recall = (d_fr.T <= r_fake[None, :]).any(axis=1).mean()
    density = (d_fr < r_real[None, :]).sum() / (k * len(fake))
    coverage = (d_fr.min(axis=0) < r_real).mean()
    return precision, recall, density, coverage


@pytest.mark.parametrize("k", [1, 3, 5])
def test_prdc_matches_the_definitions_with_small_chunks(k):
    real, fake = _features(230, 6, 23), _features(170, 6, 24, shift=0.4, scale=0.8)
    result = prdc(real, fake, k=k, chunk_size=64)
    assert (result.precision, result.recall, result.density, result.coverage) == pytest.approx(_brute_prdc(real, fake, k))


def test_prdc_agrees_with_the_prdc_package():
    reference = pytest.importorskip("prdc")
    real, fake = _features(300, 10, 25).astype(np.float32), _features(250, 10, 26, shift=0.3).astype(np.float32)
    expected = reference.compute_prdc(real, fake, nearest_k=5)
    result = prdc(real, fake, k=5)
    for name in ("precision", "recall", "density", "coverage"):
        assert getattr(result, name) == pytest.approx(float(expected[name]), abs=1e-12), name


def test_precision_recall_agree_with_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    real, fake = _features(260, 12, 27), _features(240, 12, 28, shift=0.5)
    # torch-fidelity's convention: first argument generated, second real
    precision, recall = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(real), neighborhood=3)
    assert precision_recall(real, fake, k=3) == pytest.approx((precision, recall))


def test_prdc_detects_mode_dropping_and_copies():
    real = _features(300, 4, 29)
    dropped = real[real[:, 0] > 0.3]  # fake covers one part of the real data only
    result = prdc(real, dropped, k=5)
    assert result.precision == 1.0 and result.recall < 0.7 and result.coverage < 0.7


# ---------------------------------------------------------------- MMD

def test_median_bandwidth_and_mmd_match_brute_force():
    x, y = _features(120, 5, 30), _features(90, 5, 31, shift=0.5)
    sigma = median_bandwidth(x, y)
    assert sigma == pytest.approx(np.median(pdist(np.vstack([x, y]))))
    kernel = lambda a, b: np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2))  # noqa: E731
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    n, m = len(x), len(y)
    unbiased = ((k_xx.sum() - n) / (n * (n - 1)) + (k_yy.sum() - m) / (m * (m - 1)) - 2 * k_xy.mean())
    biased = k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()
    assert mmd_rbf(x, y, chunk_size=32) == pytest.approx(unbiased, rel=1e-10)
    assert mmd_rbf(x, y, estimator="biased") == pytest.approx(biased, rel=1e-10)
    assert mmd_rbf(x, y, bandwidth=2.0) != pytest.approx(unbiased)


def test_mmd_permutation_test_separates_distributions():
    rng = np.random.default_rng(32)
    x, y_same, y_shifted = rng.normal(size=(3, 150, 8))
    y_shifted = y_shifted + 0.5
    different = mmd_permutation_test(x, y_shifted, permutations=300, seed=0)
    same = mmd_permutation_test(x, y_same, permutations=300, seed=0)
    assert different.p_value <= 1 / 301 + 1e-12  # no permutation reaches the observed MMD
    assert same.p_value > 0.05
    assert different.mmd == pytest.approx(mmd_rbf(x, y_shifted, seed=0), rel=1e-9)


def test_mmd_permutation_p_values_are_roughly_uniform_under_the_null():
    rng = np.random.default_rng(33)
    p_values = [mmd_permutation_test(*rng.normal(size=(2, 40, 3)), permutations=99, seed=s).p_value for s in range(20)]
    assert 0.25 < np.mean(p_values) < 0.75
    assert np.mean(np.array(p_values) < 0.05) <= 0.2


def test_mmd_permutation_test_refuses_huge_inputs():
    with pytest.raises(ValueError, match="subsample"):
        mmd_permutation_test(np.zeros((60, 2)), np.ones((60, 2)), max_pooled=100)


# ---------------------------------------------------------------- memorisation, neighbours, per class

def test_nearest_neighbours_match_brute_force_and_exclude_self():
    x, q = _features(150, 4, 34), _features(40, 4, 35)
    d, i = nearest_neighbours(q, x, k=3, chunk_size=16)
    full = cdist(q, x)
    np.testing.assert_array_equal(i, np.argsort(full, axis=1)[:, :3])
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :3], rtol=1e-9)
    d_self, i_self = nearest_neighbours(x, None, k=1, chunk_size=16)
    assert not (i_self[:, 0] == np.arange(150)).any()
    self_full = cdist(x, x) + np.diag(np.full(150, np.inf))
    np.testing.assert_allclose(d_self[:, 0], self_full.min(axis=1), rtol=1e-9)


def test_memorisation_ratio_flags_copies_and_not_novel_samples():
    real = _features(200, 6, 36)
    rng = np.random.default_rng(37)
    copies = real[:50] + 1e-3 * rng.normal(size=(50, 6))
    novel = _features(50, 6, 38) + 10.0
    result = memorisation_ratio(np.vstack([copies, novel]), real)
    assert result.ratio == pytest.approx(0.5)
    np.testing.assert_array_equal(result.nearest_index[:50], np.arange(50))
    real_nn = (cdist(real, real) + np.diag(np.full(200, np.inf))).min(axis=1)
    assert result.threshold == pytest.approx(np.median(real_nn))
    np.testing.assert_allclose(result.distances, cdist(np.vstack([copies, novel]), real).min(axis=1), rtol=1e-9)
    assert memorisation_ratio(copies, real, scale=1e-6).ratio == 0.0


def test_per_class_fid_equals_fid_on_each_class():
    real, fake = _features(90, 4, 39), _features(80, 4, 40, shift=0.2)
    real_labels, fake_labels = np.arange(90) % 3, np.arange(80) % 4  # class 3 has no real samples
    result = per_class(fid_from_features, real, real_labels, fake, fake_labels)
    assert set(result) == {0, 1, 2, 3} and result[3] is None
    for c in range(3):
        assert result[c] == pytest.approx(fid_from_features(real[real_labels == c], fake[fake_labels == c]))
    kid_by_class = per_class(kid, torch.from_numpy(real), real_labels, fake, fake_labels, subsets=2, subset_size=None)
    assert kid_by_class[0].subset_size == 20
