"""Particle methods: resampling unbiasedness, particle-filter evidence and filtering means against the
independent oracles in ``tests/oracles.py`` (Kalman filter, HMM forward algorithm)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats

import markovppl as mp
from markovppl import particles as pt
from oracles import hmm_forward, kalman_filter

SCHEMES = {"multinomial": pt.multinomial, "stratified": pt.stratified, "systematic": pt.systematic, "residual": pt.residual}
Z_TOL = 4.5  # |z| bound for Monte Carlo checks (fixed seeds; many comparisons per test)


def _weights(n=8, seed=0):
    w = np.random.default_rng(seed).dirichlet(np.full(n, 0.7))
    return jnp.log(jnp.asarray(w)), w


def _counts(idx, n):
    return np.asarray((idx[..., None] == jnp.arange(n)).sum(-2))


def _zscores(samples, expected):
    """z of the sample mean against ``expected`` (per column); columns with zero sample variance must
    match exactly (returned z is 0 or inf)."""
    mean, sd = samples.mean(0), samples.std(0, ddof=1)
    se = sd / np.sqrt(samples.shape[0])
    diff = mean - expected
    return np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(np.abs(diff) < 1e-9, 0.0, np.inf))


# --------------------------------------------------------------------------- resampling (T-A3)
@pytest.fixture(scope="module")
def offspring_counts():
    """Offspring counts ``(R, N)`` of R = 10^4 independent draws per scheme, fixed weights and seeds."""
    n, r = 8, 10_000
    lw, w = _weights(n)
    keys = jax.random.split(jax.random.PRNGKey(1), r)
    out = {}
    for name, fn in SCHEMES.items():
        idx = jax.jit(jax.vmap(lambda k: fn(k, lw, n)))(keys)
        assert idx.shape == (r, n) and jnp.issubdtype(idx.dtype, jnp.integer)
        assert int(idx.min()) >= 0 and int(idx.max()) < n
        out[name] = _counts(idx, n)
    return w, out


@pytest.mark.parametrize("name", list(SCHEMES))
def test_resampling_offspring_mean_is_n_times_weight(offspring_counts, name):
    w, counts = offspring_counts
    n = w.shape[0]
    assert (counts[name].sum(1) == n).all()
    z = _zscores(counts[name], n * w)
    assert np.max(np.abs(z)) < Z_TOL, (name, z)


@pytest.mark.parametrize("name", ["stratified", "systematic", "residual"])
def test_low_variance_schemes_beat_multinomial(offspring_counts, name):
    _, counts = offspring_counts
    var = {s: counts[s].var(0).sum() for s in ("multinomial", name)}
    assert var[name] < 0.8 * var["multinomial"], var


def test_systematic_counts_are_floor_or_ceil_and_residual_keeps_copies(offspring_counts):
    w, counts = offspring_counts
    n = w.shape[0]
    c = counts["systematic"]
    assert ((c >= np.floor(n * w)) & (c <= np.ceil(n * w))).all()
    assert (counts["residual"] >= np.floor(n * w)).all()


@pytest.mark.parametrize("name", list(SCHEMES))
def test_resampling_never_picks_zero_weights_and_uses_logsumexp(name):
    lw = jnp.array([-jnp.inf, 1000.0, 1000.0 + jnp.log(3.0), jnp.nan])   # would overflow without logsumexp
    idx = jax.vmap(lambda k: SCHEMES[name](k, lw, 40))(jax.random.split(jax.random.PRNGKey(0), 200))
    counts = _counts(idx, 4)
    assert counts[:, 0].sum() == 0 and counts[:, 3].sum() == 0
    assert abs(counts[:, 2].mean() - 30.0) < 1.0


@pytest.mark.parametrize("name", list(SCHEMES))
def test_conditional_resampling_pins_slot_zero_and_is_unbiased(name):
    n, r, pinned = 8, 10_000, 5
    lw, w = _weights(n, seed=5)
    cond = pt.conditional(SCHEMES[name])
    idx = jax.jit(jax.vmap(lambda k: cond(k, lw, n, pinned)))(jax.random.split(jax.random.PRNGKey(3), r))
    assert (np.asarray(idx[:, 0]) == pinned).all()
    expected = (n - 1) * w + (np.arange(n) == pinned)
    z = _zscores(_counts(idx, n), expected)
    assert np.max(np.abs(z)) < Z_TOL, z


def test_conditional_rejects_unknown_scheme():
    with pytest.raises(ValueError):
        pt.conditional(lambda k, lw, n: jnp.zeros(n, int))


# --------------------------------------------------------------------------- LGSSM fixtures
RHO, SX, SY = 0.9, 1.0, 0.5


def _lgssm_data(T=50, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros(T)
    x[0] = rng.normal()
    for t in range(1, T):
        x[t] = RHO * x[t - 1] + SX * rng.normal()
    y = (x + SY * rng.normal(size=T))[:, None]
    y[7] = np.nan                                   # a missing step
    ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), RHO * jnp.eye(1), SX**2 * jnp.eye(1),
                               jnp.eye(1), SY**2 * jnp.eye(1))
    kf = kalman_filter(np.zeros(1), np.eye(1), RHO * np.eye(1), np.zeros(1), SX**2 * np.eye(1),
                       np.eye(1), np.zeros(1), SY**2 * np.eye(1), y)
    return ssm, jnp.asarray(y), kf


def _log_evidences(fk, T, N, keys, chunk=250, **kw):
    run = jax.jit(jax.vmap(lambda k: pt.particle_filter(k, fk, T, N, **kw).log_evidence))
    return np.concatenate([np.asarray(run(keys[i:i + chunk])) for i in range(0, keys.shape[0], chunk)])


# --------------------------------------------------------------------------- evidence (T-A1)
def test_lgssm_evidence_is_unbiased():
    ssm, y, kf = _lgssm_data()
    T, N, R = y.shape[0], 300, 1000
    log_z = kf["log_evidence"]
    err = _log_evidences(pt.bootstrap_lgssm(ssm, y), T, N, jax.random.split(jax.random.PRNGKey(10), R)) - log_z
    assert np.all(np.isfinite(err))
    assert err.var() < 1.0, "Var(log Z_hat) must be <= 1 for the ratio test to have power"
    ratio = np.exp(err)
    se = ratio.std(ddof=1) / np.sqrt(R)
    assert abs(ratio.mean() - 1.0) < 4 * se, (ratio.mean(), se)
    assert err.mean() < 0                      # log Z_hat is biased downward


def test_hmm_evidence_is_unbiased():
    K, T, N, R = 3, 30, 200, 1000
    pi0 = jnp.array([0.5, 0.3, 0.2])
    P = jnp.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    emission = dist.Normal(jnp.array([-1.5, 0.0, 1.5]), 0.8)
    hmm = mp.HMM(pi0, P, emission)
    rng = np.random.default_rng(4)
    x = [rng.choice(K, p=np.asarray(pi0))]
    for _ in range(T - 1):
        x.append(rng.choice(K, p=np.asarray(P)[x[-1]]))
    y = np.array([-1.5, 0.0, 1.5])[x] + 0.8 * rng.normal(size=T)
    y[5] = np.nan
    y = jnp.asarray(y)
    loglik = np.where(np.isnan(y)[:, None], 0.0, np.asarray(emission.log_prob(jnp.nan_to_num(y)[:, None])))
    log_z = hmm_forward(np.asarray(pi0), np.asarray(P), loglik)["log_evidence"]
    err = _log_evidences(pt.bootstrap_hmm(hmm, y), T, N, jax.random.split(jax.random.PRNGKey(11), R),
                         resample_fn=pt.multinomial, ess_threshold=1.0) - log_z
    assert err.var() < 1.0
    ratio = np.exp(err)
    se = ratio.std(ddof=1) / np.sqrt(R)
    assert abs(ratio.mean() - 1.0) < 4 * se, (ratio.mean(), se)


# --------------------------------------------------------------------------- filtering means (T-A2)
def test_lgssm_filtering_means_track_kalman():
    ssm, y, kf = _lgssm_data(seed=1)
    T, N, R = y.shape[0], 1000, 32
    fk = pt.bootstrap_lgssm(ssm, y)

    def means(k):
        pf = pt.particle_filter(k, fk, T, N)
        return jnp.sum(jnp.exp(pf.log_weights) * pf.particles[..., 0], axis=1)

    est = np.asarray(jax.jit(jax.vmap(means))(jax.random.split(jax.random.PRNGKey(12), R)))   # (R, T)
    z = _zscores(est, kf["filtered_means"][:, 0])
    assert np.max(np.abs(z)) < Z_TOL, z
    # and each single run is within a tolerance derived from N: 5 Monte Carlo sds, the sd being at most
    # 4 posterior sds / sqrt(N) (the asymptotic-variance inflation of resampling; measured about 2.5)
    tol = 20 * np.sqrt(kf["filtered_covs"][:, 0, 0]) / np.sqrt(N)
    assert (np.abs(est - kf["filtered_means"][:, 0]) < tol).all()


def test_lgssm_partially_missing_coordinates_potential():
    R = jnp.array([[1.0, 0.4], [0.4, 0.5]])
    H = jnp.array([[1.0, 0.0], [0.5, 1.0]])
    ssm = mp.LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), 0.5 * jnp.eye(2), jnp.eye(2), H, R,
                               emission_offset=jnp.array([0.1, -0.2]))
    y = jnp.array([[0.3, jnp.nan], [jnp.nan, 1.0], [0.2, 0.1], [jnp.nan, jnp.nan]])
    fk = pt.bootstrap_lgssm(ssm, y)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    mu = np.asarray(x @ H.T + jnp.array([0.1, -0.2]))
    Rn = np.asarray(R)
    for t in range(4):
        o = ~np.isnan(np.asarray(y[t]))
        want = np.zeros(5) if not o.any() else np.array(
            [scipy.stats.multivariate_normal(mu[i, o], Rn[np.ix_(o, o)]).logpdf(np.asarray(y[t])[o]) for i in range(5)])
        np.testing.assert_allclose(np.asarray(fk.log_g(t, x, x)), want, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- structure, jit/vmap
def test_result_structure_and_adaptive_resampling():
    ssm, y, _ = _lgssm_data(T=20)
    fk = pt.bootstrap_lgssm(ssm, y)
    key = jax.random.PRNGKey(0)
    pf = pt.particle_filter(key, fk, 20, 64)
    assert pf.particles.shape == (20, 64, 1) and pf.log_weights.shape == pf.ancestors.shape == (20, 64)
    assert pf.log_evidence_increments.shape == pf.ess.shape == pf.resampled.shape == (20,)
    np.testing.assert_array_equal(pf.ancestors[0], np.arange(64))
    np.testing.assert_allclose(jax.scipy.special.logsumexp(pf.log_weights, axis=1), 0.0, atol=1e-10)
    np.testing.assert_allclose(pf.log_evidence, pf.log_evidence_increments.sum())
    assert not bool(pf.resampled[0])
    # resampling happens exactly when the previous ESS fell below the threshold
    np.testing.assert_array_equal(pf.resampled[1:], pf.ess[:-1] < 0.5 * 64)
    # where not resampled, ancestors are the identity
    assert all((np.asarray(pf.ancestors[t]) == np.arange(64)).all() for t in range(1, 20) if not pf.resampled[t])
    always = pt.particle_filter(key, fk, 20, 64, ess_threshold=1.0)
    never = pt.particle_filter(key, fk, 20, 64, ess_threshold=0.0)
    assert bool(always.resampled[1:].all()) and not bool(never.resampled.any())
    assert (1.0 <= pf.ess).all() and (pf.ess <= 64 + 1e-9).all()


def test_jit_and_vmap_over_keys():
    ssm, y, _ = _lgssm_data(T=10)
    fk = pt.bootstrap_lgssm(ssm, y)
    key = jax.random.PRNGKey(5)
    keys = jax.random.split(key, 3)
    eager = pt.particle_filter(keys[1], fk, 10, 32, resample_fn=pt.residual)
    batched = jax.jit(jax.vmap(lambda k: pt.particle_filter(k, fk, 10, 32, resample_fn=pt.residual)))(keys)
    assert batched.particles.shape == (3, 10, 32, 1) and batched.log_evidence.shape == (3,)
    np.testing.assert_allclose(eager.log_evidence, batched.log_evidence[1], rtol=1e-10)
    np.testing.assert_array_equal(eager.ancestors, batched.ancestors[1])
    assert len(set(np.asarray(batched.log_evidence).tolist())) == 3


def test_all_particles_zero_weight_gives_minus_inf_evidence():
    base = pt.FeynmanKac(m0=lambda k, n: jax.random.normal(k, (n,)),
                         m=lambda k, t, x: x + jax.random.normal(k, x.shape),
                         log_g=lambda t, xp, x: jnp.where(t == 2, -jnp.inf, -0.5 * x**2))
    pf = pt.particle_filter(jax.random.PRNGKey(0), base, 5, 16)
    assert np.isneginf(pf.log_evidence_increments[2]) and np.isneginf(pf.log_evidence)
    assert float(pf.ess[2]) == 0.0 and np.isneginf(pf.log_weights[2]).all()
    assert np.isfinite(np.asarray(pf.log_evidence_increments)[[0, 1, 3, 4]]).all() and bool(pf.resampled[3])
    assert (pf.ess[3:] > 0).all()
    nan_fk = base._replace(log_g=lambda t, xp, x: jnp.where(t == 2, jnp.nan, -0.5 * x**2))
    pf_nan = pt.particle_filter(jax.random.PRNGKey(0), nan_fk, 5, 16)
    assert np.isneginf(pf_nan.log_evidence) and float(pf_nan.ess[2]) == 0.0
    one = pt.particle_filter(jax.random.PRNGKey(0), base, 1, 16)
    assert one.particles.shape == (1, 16) and bool(jnp.isfinite(one.log_evidence)) and not bool(one.resampled[0])


# --------------------------------------------------------------------------- validation
def test_validation_errors():
    ssm, y, _ = _lgssm_data(T=10)
    fk = pt.bootstrap_lgssm(ssm, y)
    with pytest.raises(ValueError, match="num_particles"):
        pt.particle_filter(jax.random.PRNGKey(0), fk, 10, 1)
    with pytest.raises(ValueError, match="num_steps"):
        pt.particle_filter(jax.random.PRNGKey(0), fk, 0, 10)
    with pytest.raises(ValueError, match="log_g"):
        pt.particle_filter(jax.random.PRNGKey(0), fk._replace(log_g=lambda t, xp, x: jnp.zeros(3)), 10, 10)
    with pytest.raises(ValueError, match="ess_threshold"):
        pt.particle_filter(jax.random.PRNGKey(0), fk, 10, 10, ess_threshold=-0.1)
    with pytest.raises(ValueError, match="obs"):
        pt.bootstrap_lgssm(ssm, jnp.zeros((10, 2)))
    with pytest.raises(ValueError, match="obs"):
        pt.bootstrap_lgssm(ssm, jnp.zeros(10))
    batched = mp.LinearGaussianSSM(jnp.zeros((2, 1)), jnp.eye(1), jnp.eye(1), jnp.eye(1), jnp.eye(1), jnp.eye(1))
    with pytest.raises(ValueError, match="batch_shape"):
        pt.bootstrap_lgssm(batched, jnp.zeros((10, 1)))
    tv = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), mp.time_varying(jnp.ones((9, 1, 1))), jnp.eye(1), jnp.eye(1), jnp.eye(1))
    with pytest.raises(ValueError, match="time_varying"):
        pt.bootstrap_lgssm(tv, jnp.zeros((10, 1)))
    hmm = mp.HMM(jnp.array([0.5, 0.5]), jnp.eye(2), dist.Poisson(jnp.array([1.0, 5.0])))
    with pytest.raises(ValueError, match="obs"):
        pt.bootstrap_hmm(hmm, jnp.zeros((10, 1)))
    with pytest.raises(ValueError, match="batch_shape"):
        pt.bootstrap_hmm(mp.HMM(jnp.full((3, 2), 0.5), jnp.eye(2), dist.Poisson(jnp.array([1.0, 5.0]))), jnp.zeros(10))
    with pytest.raises(ValueError, match="time_varying"):
        pt.bootstrap_hmm(mp.HMM(jnp.array([0.5, 0.5]), mp.time_varying(jnp.broadcast_to(jnp.eye(2), (9, 2, 2))),
                                dist.Poisson(jnp.array([1.0, 5.0]))), jnp.zeros(10))


def test_hmm_poisson_counts_and_integer_states():
    hmm = mp.HMM(jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]), dist.Poisson(jnp.array([1.0, 6.0])))
    y = jnp.array([0, 1, 7, 5, 0, 2])
    pf = pt.particle_filter(jax.random.PRNGKey(0), pt.bootstrap_hmm(hmm, y), 6, 4000)
    assert jnp.issubdtype(pf.particles.dtype, jnp.integer) and pf.particles.shape == (6, 4000)
    assert abs(float(pf.log_evidence - hmm.log_prob(y))) < 0.1


# --------------------------------------------------------------------------- transition densities
def test_bootstrap_transition_densities_match_the_model_kernels():
    """``log_m`` of the bootstrap models equals the model's transition log-density (SciPy), broadcasts
    one state against many, and ``log_m_bound`` bounds it; a singular Q has no density."""
    rng = np.random.default_rng(3)
    A = np.array([[0.9, 0.2], [-0.1, 0.7]])
    Q = np.array([[0.5, 0.1], [0.1, 0.3]])
    ssm = mp.LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), jnp.asarray(A), jnp.asarray(Q), jnp.eye(2), 0.2 * jnp.eye(2),
                               transition_offset=jnp.array([0.3, -0.2]))
    fk = pt.bootstrap_lgssm(ssm, jnp.zeros((3, 2)))
    xp, xt = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    want = [scipy.stats.multivariate_normal(A @ a + [0.3, -0.2], Q).logpdf(b) for a, b in zip(xp, xt)]
    np.testing.assert_allclose(fk.log_m(1, jnp.asarray(xp), jnp.asarray(xt)), want, rtol=1e-10)
    one_vs_all = fk.log_m(1, jnp.asarray(xp), jnp.asarray(xt[:1]))
    np.testing.assert_allclose(one_vs_all, [scipy.stats.multivariate_normal(A @ a + [0.3, -0.2], Q).logpdf(xt[0]) for a in xp],
                               rtol=1e-10)
    assert float(fk.log_m_bound(1)) >= float(jnp.max(one_vs_all))
    np.testing.assert_allclose(fk.log_m_bound(1), scipy.stats.multivariate_normal(np.zeros(2), Q).logpdf(np.zeros(2)))
    singular = mp.LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), jnp.asarray(A), jnp.diag(jnp.array([1.0, 0.0])), jnp.eye(2),
                                    jnp.eye(2))
    assert pt.bootstrap_lgssm(singular, jnp.zeros((3, 2))).log_m is None

    P = np.array([[0.8, 0.2], [0.3, 0.7]])
    hmm = mp.HMM(jnp.array([0.5, 0.5]), jnp.asarray(P), dist.Normal(jnp.array([-1.0, 1.0]), 1.0))
    fk = pt.bootstrap_hmm(hmm, jnp.zeros(3))
    i, j = jnp.array([0, 0, 1, 1]), jnp.array([0, 1, 0, 1])
    np.testing.assert_allclose(fk.log_m(1, i, j), np.log(P[np.asarray(i), np.asarray(j)]))
    np.testing.assert_allclose(fk.log_m_bound(1), np.log(0.8))


def test_bootstrap_lgssm_builds_inside_jit_with_fixed_parameters():
    """The singular-Q check runs in NumPy on concrete matrices, so building the model under ``jit`` (with
    parameters closed over as constants) works and gives the evidence of the same filter run eagerly."""
    ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), 0.9 * jnp.eye(1), jnp.eye(1), jnp.eye(1), 0.25 * jnp.eye(1))
    y = jnp.array([[0.1], [0.5], [0.3]])
    run = lambda key: pt.particle_filter(key, pt.bootstrap_lgssm(ssm, y), 3, 64).log_evidence
    key = jax.random.PRNGKey(0)
    np.testing.assert_allclose(jax.jit(run)(key), run(key), rtol=1e-10)
