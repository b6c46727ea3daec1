"""Cross-checks of the NumPy/SciPy oracles in ``tests/oracles.py`` against each other."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracles as O  # noqa: E402


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _random_hmm(rng, K, T, time_varying=False, missing=()):
    pi0 = rng.dirichlet(np.ones(K))
    if time_varying:
        P = rng.dirichlet(np.ones(K), size=(T - 1, K))
    else:
        P = rng.dirichlet(np.ones(K), size=K)
    loglik = rng.normal(scale=2.0, size=(T, K))
    for t in missing:
        loglik[t] = 0.0
    return pi0, P, loglik


def _random_lgssm(rng, d, m):
    A = rng.normal(size=(d, d))
    A *= 0.9 / max(1.0, np.max(np.abs(np.linalg.eigvals(A))))
    def spd(n):
        L = rng.normal(size=(n, n))
        return L @ L.T + 0.5 * np.eye(n)
    return dict(
        m0=rng.normal(size=d),
        P0=spd(d),
        A=A,
        b=rng.normal(size=d),
        Q=spd(d),
        H=rng.normal(size=(m, d)),
        c=rng.normal(size=m),
        R=spd(m),
    )


HMM_CASES = [
    # (seed, K, T, time_varying, missing steps)
    (0, 2, 6, False, ()),
    (1, 3, 5, False, (2,)),
    (2, 4, 4, True, ()),
    (3, 3, 6, True, (0, 5)),
    (4, 2, 1, False, ()),
]


# ---------------------------------------------------------------------------
# HMM
# ---------------------------------------------------------------------------


def test_classic_hmm_evidence():
    P = np.array([[0.8, 0.15, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    pi0 = np.array([0.5, 0.3, 0.2])
    E = np.array([[0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.2, 0.6]])
    y = [0, 1, 1, 2, 0]
    loglik = np.log(E[:, y].T)
    expected = 0.00301027005
    for fn in (O.hmm_enumerate, O.hmm_forward, O.hmm_forward_backward):
        ev = np.exp(fn(pi0, P, loglik)["log_evidence"])
        assert ev == pytest.approx(expected, rel=1e-10)
    np.testing.assert_array_equal(
        O.hmm_viterbi(pi0, P, loglik)["map_path"],
        O.hmm_enumerate(pi0, P, loglik)["map_path"],
    )


@pytest.mark.parametrize("seed,K,T,tv,missing", HMM_CASES)
def test_hmm_enumeration_vs_recursions(seed, K, T, tv, missing):
    rng = np.random.default_rng(seed)
    pi0, P, ll = _random_hmm(rng, K, T, tv, missing)
    en = O.hmm_enumerate(pi0, P, ll)
    fw = O.hmm_forward(pi0, P, ll)
    fb = O.hmm_forward_backward(pi0, P, ll)
    vi = O.hmm_viterbi(pi0, P, ll)

    assert fw["log_evidence"] == pytest.approx(en["log_evidence"], abs=1e-10)
    assert fb["log_evidence"] == pytest.approx(en["log_evidence"], abs=1e-10)
    assert np.sum(fw["log_predictive"]) == pytest.approx(fw["log_evidence"], abs=1e-10)
    np.testing.assert_allclose(fb["marginals"], en["marginals"], atol=1e-10, rtol=0)
    np.testing.assert_allclose(fb["pairwise"], en["pairwise"], atol=1e-10, rtol=0)
    np.testing.assert_array_equal(vi["map_path"], en["map_path"])
    assert vi["map_log_joint"] == pytest.approx(en["map_log_joint"], abs=1e-10)
    # last filtered == last smoothed; predicted[0] == initial probs
    np.testing.assert_allclose(fw["filtered"][-1], en["marginals"][-1], atol=1e-10)
    np.testing.assert_allclose(fw["predicted"][0], pi0, atol=0)
    # pairwise marginalises to the singleton marginals
    if T > 1:
        np.testing.assert_allclose(fb["pairwise"].sum(2), fb["marginals"][:-1], atol=1e-12)
        np.testing.assert_allclose(fb["pairwise"].sum(1), fb["marginals"][1:], atol=1e-12)


def test_hmm_filtered_prefix_consistency():
    # filtered[t] must equal the last smoothed marginal of the prefix y_0..y_t
    rng = np.random.default_rng(7)
    pi0, P, ll = _random_hmm(rng, 3, 6, time_varying=True)
    fw = O.hmm_forward(pi0, P, ll)
    for t in range(6):
        en = O.hmm_enumerate(pi0, P[:t], ll[: t + 1])
        np.testing.assert_allclose(fw["filtered"][t], en["marginals"][-1], atol=1e-10)
        prefix_ev = np.sum(fw["log_predictive"][: t + 1])
        assert prefix_ev == pytest.approx(en["log_evidence"], abs=1e-10)


def test_hmm_long_sequence_is_stable():
    rng = np.random.default_rng(8)
    K, T = 4, 10_000
    pi0, P, ll = _random_hmm(rng, K, T)
    ll *= 20.0  # extreme log-likelihoods; scaling must keep things finite
    fw = O.hmm_forward(pi0, P, ll)
    assert np.isfinite(fw["log_evidence"])
    assert np.sum(fw["log_predictive"]) == pytest.approx(fw["log_evidence"], rel=1e-12)
    fb = O.hmm_forward_backward(pi0, P, ll)
    assert np.all(np.isfinite(fb["marginals"]))
    np.testing.assert_allclose(fb["marginals"].sum(1), 1.0, atol=1e-12)


def test_hmm_enumerate_refuses_large():
    with pytest.raises(ValueError):
        O.hmm_enumerate(np.ones(4) / 4, np.ones((4, 4)) / 4, np.zeros((11, 4)))


def test_hmm_stationary():
    rng = np.random.default_rng(9)
    P = rng.dirichlet(np.ones(5), size=5)
    pi = O.hmm_stationary(P)
    np.testing.assert_allclose(pi @ P, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(pi > 0)
    np.testing.assert_allclose(pi, np.linalg.matrix_power(P, 200)[0], atol=1e-10)


# ---------------------------------------------------------------------------
# Linear-Gaussian SSM
# ---------------------------------------------------------------------------


LGSSM_CASES = [
    # (seed, d, m, T, missing) -- missing: list of (t, coord) or (t, None) for full row
    (10, 1, 1, 6, []),
    (11, 2, 1, 5, [(2, None)]),
    (12, 2, 3, 5, [(0, 1), (1, 0), (1, 2), (3, None)]),
    (13, 3, 2, 4, [(0, None), (2, 1)]),
]


def _problem(seed, d, m, T, missing):
    rng = np.random.default_rng(seed)
    p = _random_lgssm(rng, d, m)
    _, y = O.lgssm_simulate(rng, T=T, **p)
    for t, j in missing:
        if j is None:
            y[t] = np.nan
        else:
            y[t, j] = np.nan
    return p, y


@pytest.mark.parametrize("seed,d,m,T,missing", LGSSM_CASES)
def test_kalman_vs_dense(seed, d, m, T, missing):
    p, y = _problem(seed, d, m, T, missing)
    kf = O.kalman_filter(y=y, **p)
    sm = O.rts_smoother(y=y, **p)
    dn = O.lgssm_dense(y=y, **p)

    assert kf["log_evidence"] == pytest.approx(dn["log_evidence"], abs=1e-9)
    assert np.sum(kf["log_predictive"]) == pytest.approx(kf["log_evidence"], abs=1e-12)
    for t, j in missing:
        if j is None:
            assert kf["log_predictive"][t] == 0.0

    np.testing.assert_allclose(sm["smoothed_means"], dn["posterior_mean"], atol=1e-9, rtol=0)
    C = dn["posterior_cov"]
    for t in range(T):
        blk = C[t * d:(t + 1) * d, t * d:(t + 1) * d]
        np.testing.assert_allclose(sm["smoothed_covs"][t], blk, atol=1e-9, rtol=0)
    for t in range(T - 1):
        blk = C[t * d:(t + 1) * d, (t + 1) * d:(t + 2) * d]
        np.testing.assert_allclose(sm["smoothed_cross_covs"][t], blk, atol=1e-9, rtol=0)

    # last filtered == last smoothed
    np.testing.assert_allclose(kf["filtered_means"][-1], dn["posterior_mean"][-1], atol=1e-9)


def test_kalman_filtered_prefix_consistency():
    # filtered moments at t == dense posterior of x_t given y_0..y_t
    p, y = _problem(14, 2, 2, 5, [(1, 0), (3, None)])
    kf = O.kalman_filter(y=y, **p)
    d = 2
    for t in range(5):
        dn = O.lgssm_dense(y=y[: t + 1], **p)
        np.testing.assert_allclose(kf["filtered_means"][t], dn["posterior_mean"][t], atol=1e-9)
        np.testing.assert_allclose(
            kf["filtered_covs"][t], dn["posterior_cov"][t * d:, t * d:], atol=1e-9
        )
        assert np.sum(kf["log_predictive"][: t + 1]) == pytest.approx(
            dn["log_evidence"], abs=1e-9
        )
    # predicted[0] is the prior
    np.testing.assert_allclose(kf["predicted_means"][0], p["m0"])
    np.testing.assert_allclose(kf["predicted_covs"][0], p["P0"])


def test_lgssm_simulate_moments():
    rng = np.random.default_rng(15)
    p = _random_lgssm(rng, 2, 1)
    T, N = 3, 4000
    draws = np.array(
        [np.concatenate([a.ravel() for a in O.lgssm_simulate(rng, T=T, **p)]) for _ in range(N)]
    )
    # compare with the dense joint moments (x then y, time-major)
    dn = O.lgssm_dense(y=np.full((T, 1), np.nan), **p)
    sd = np.sqrt(np.diag(dn["cov"]))
    z = (draws.mean(0) - dn["mean"]) / (sd / np.sqrt(N))
    assert np.all(np.abs(z) < 5)


# ---------------------------------------------------------------------------
# Quadrature
# ---------------------------------------------------------------------------


def test_grid_posterior_conjugate_normal():
    # prior N(1, 2^2), 5 observations with known sd 0.5
    obs = np.array([0.3, 0.8, 1.1, 0.2, 0.6])
    s, mu0, s0 = 0.5, 1.0, 2.0
    prec = 1 / s0**2 + len(obs) / s**2
    post_mean = (mu0 / s0**2 + obs.sum() / s**2) / prec
    post_sd = np.sqrt(1 / prec)

    def ll(theta):
        theta = np.asarray(theta)
        return -0.5 * np.sum((obs[..., :, None] - theta[..., None, :]) ** 2, axis=-2) / s**2 \
            if theta.ndim else -0.5 * np.sum((obs - theta) ** 2) / s**2

    grid = np.linspace(-3, 5, 8001)
    mean, sd = O.grid_posterior(ll, lambda th: -0.5 * (th - mu0) ** 2 / s0**2, grid)
    assert mean == pytest.approx(post_mean, abs=1e-8)
    assert sd == pytest.approx(post_sd, abs=1e-8)

    # scalar-only function falls back to point-wise evaluation
    mean2, sd2 = O.grid_posterior(
        lambda th: float(-0.5 * np.sum((obs - th) ** 2) / s**2),
        lambda th: float(-0.5 * (th - mu0) ** 2 / s0**2),
        grid,
    )
    assert mean2 == pytest.approx(mean, abs=1e-12)
    assert sd2 == pytest.approx(sd, abs=1e-12)


def test_grid_posterior_2d_gaussian():
    mu = np.array([0.5, -1.0])
    S = np.array([[1.0, 0.6], [0.6, 2.0]])
    Si = np.linalg.inv(S)

    def logd(x, y):
        dx, dy = x - mu[0], y - mu[1]
        return -0.5 * (Si[0, 0] * dx * dx + 2 * Si[0, 1] * dx * dy + Si[1, 1] * dy * dy)

    gx = np.linspace(-7, 8, 601)
    gy = np.linspace(-11, 9, 801)
    means, sds = O.grid_posterior_2d(logd, gx, gy)
    np.testing.assert_allclose(means, mu, atol=1e-6)
    np.testing.assert_allclose(sds, np.sqrt(np.diag(S)), atol=1e-5)
