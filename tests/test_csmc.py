"""Conditional SMC and the particle Gibbs kernel (ppg_conformal.md §C T-A4, T-A5, T-A6, T-A13).

Oracles: exact smoother draws (``posterior_sample``), the RTS smoother and brute-force path
enumeration from ``tests/oracles.py``. Every invariance check is also run on a deliberately broken
kernel (backward weights that omit the transition density $m_t$), which must fail it.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats

import markovppl as mp
from markovppl import particles as pt
from markovppl.particles.csmc import conditional_smc, particle_gibbs_init, particle_gibbs_step
from oracles import hmm_enumerate, rts_smoother

Z_TOL = 4.5
KERNELS = ["backward", "ancestor", "genealogy"]

# --------------------------------------------------------------------------- shared fixtures (also used by
# test_paris / test_ppg / test_learning)
RHO, SX, SY = 0.9, 1.0, 0.5


def lgssm_problem(T=10, seed=0, rho=RHO, sx=SX, sy=SY):
    """Scalar LGSSM, simulated data, and its RTS oracle (means, variances, lag-one cross moments)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(T)
    x[0] = rng.normal()
    for t in range(1, T):
        x[t] = rho * x[t - 1] + sx * rng.normal()
    y = (x + sy * rng.normal(size=T))[:, None]
    ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1), rho * jnp.eye(1), sx**2 * jnp.eye(1),
                               jnp.eye(1), sy**2 * jnp.eye(1))
    rts = rts_smoother(np.zeros(1), np.eye(1), rho * np.eye(1), np.zeros(1), sx**2 * np.eye(1),
                       np.eye(1), np.zeros(1), sy**2 * np.eye(1), y)
    return ssm, jnp.asarray(y), rts


def broken_without_m(fk):
    """The same model with log m_t replaced by 0: backward weights then omit the transition density."""
    return fk._replace(log_m=lambda t, xp, x: jnp.zeros(jax.tree.leaves(xp)[0].shape[0]))


def mean_var_z(samples, mean, var):
    """z-scores of the per-column sample mean against ``mean`` and of the mean squared deviation
    against ``var`` (SE from the sample itself)."""
    r = samples.shape[0]
    z_mean = (samples.mean(0) - mean) / (samples.std(0, ddof=1) / np.sqrt(r))
    sq = (samples - mean) ** 2
    z_var = (sq.mean(0) - var) / (sq.std(0, ddof=1) / np.sqrt(r))
    return z_mean, z_var


def hmm_problem(T=3):
    """A 2-state sticky HMM with Gaussian emissions and its exact path law by enumeration."""
    pi0 = np.array([0.6, 0.4])
    P = np.array([[0.9, 0.1], [0.2, 0.8]])
    mu = np.array([-1.0, 1.0])
    y = np.array([-0.3, 0.9, 0.2, -1.1, 0.5, 0.7][:T])
    hmm = mp.HMM(jnp.asarray(pi0), jnp.asarray(P), dist.Normal(jnp.asarray(mu), 1.0))
    loglik = scipy.stats.norm.logpdf(y[:, None], mu[None, :], 1.0)
    paths = np.array(list(itertools.product(range(2), repeat=T)))
    lj = np.log(pi0[paths[:, 0]]) + loglik[0, paths[:, 0]]
    for t in range(1, T):
        lj = lj + np.log(P[paths[:, t - 1], paths[:, t]]) + loglik[t, paths[:, t]]
    probs = np.exp(lj - scipy.special.logsumexp(lj))
    enum = hmm_enumerate(pi0, P, loglik)
    np.testing.assert_allclose((probs[:, None, None] * (paths[:, :, None] == np.arange(2))).sum(0), enum["marginals"])
    return hmm, jnp.asarray(y), paths, probs


def path_codes(paths):
    T = paths.shape[-1]
    return np.asarray(paths) @ (2 ** np.arange(T - 1, -1, -1))


# --------------------------------------------------------------------------- T-A4 one-step invariance (LGSSM)
def _one_step(fk, refs, n, path_sampling, seed=1):
    keys = jax.random.split(jax.random.PRNGKey(seed), refs.shape[0])
    run = jax.jit(jax.vmap(lambda k, r: conditional_smc(k, fk, r, n, path_sampling=path_sampling)[0]))
    return np.asarray(run(keys, refs))[..., 0]


@pytest.fixture(scope="module")
def lgssm_exact_draws():
    ssm, y, rts = lgssm_problem(T=10)
    refs = ssm.posterior_sample(jax.random.PRNGKey(0), y, (4000,))
    return ssm, y, rts, refs


INVARIANCE_CASES = [("backward", 3), ("ancestor", 3), ("genealogy", 3),
                    pytest.param("backward", 8, marks=pytest.mark.slow),
                    pytest.param("ancestor", 8, marks=pytest.mark.slow),
                    pytest.param("genealogy", 8, marks=pytest.mark.slow)]


@pytest.mark.parametrize("path_sampling,n", INVARIANCE_CASES)
def test_one_step_invariance_from_exact_smoother_draws(lgssm_exact_draws, path_sampling, n):
    """T-A4: R = 4000 exact draws, one kernel step each; per-t mean and variance z-scores (2T = 20
    comparisons, |z| < 4.5). Power: the broken kernel below fails with |z| > 10."""
    ssm, y, rts, refs = lgssm_exact_draws
    out = _one_step(pt.bootstrap_lgssm(ssm, y), refs, n, path_sampling)
    z_mean, z_var = mean_var_z(out, rts["smoothed_means"][:, 0], rts["smoothed_covs"][:, 0, 0])
    assert np.max(np.abs(z_mean)) < Z_TOL and np.max(np.abs(z_var)) < Z_TOL, (z_mean, z_var)
    ks = [scipy.stats.kstest((out[:, t] - rts["smoothed_means"][t, 0]) / np.sqrt(rts["smoothed_covs"][t, 0, 0]),
                             "norm").pvalue for t in range(out.shape[1])]
    assert min(ks) > 1e-3 / out.shape[1], ks
    if path_sampling != "genealogy":
        assert np.mean(np.any(out != np.asarray(refs)[..., 0], axis=1)) > 0.5   # the kernel moves


@pytest.mark.parametrize("path_sampling", ["backward", pytest.param("ancestor", marks=pytest.mark.slow)])
def test_broken_kernel_fails_the_invariance_check(lgssm_exact_draws, path_sampling):
    ssm, y, rts, refs = lgssm_exact_draws
    out = _one_step(broken_without_m(pt.bootstrap_lgssm(ssm, y)), refs, 3, path_sampling)
    z_mean, z_var = mean_var_z(out, rts["smoothed_means"][:, 0], rts["smoothed_covs"][:, 0, 0])
    assert max(np.max(np.abs(z_mean)), np.max(np.abs(z_var))) > 10.0


# --------------------------------------------------------------------------- T-A5 brute-force path law (HMM)
@pytest.fixture(scope="module")
def hmm_exact():
    hmm, y, paths, probs = hmm_problem(T=3)
    r = 20_000
    codes = jax.random.choice(jax.random.PRNGKey(3), len(probs), (r,), p=jnp.asarray(probs))
    refs = jnp.asarray(paths)[codes].astype(jnp.int32)
    return hmm, y, paths, probs, refs


def _path_law_pvalue(fk, refs, probs, path_sampling, n=3):
    keys = jax.random.split(jax.random.PRNGKey(4), refs.shape[0])
    out = jax.jit(jax.vmap(lambda k, r: conditional_smc(k, fk, r, n, path_sampling=path_sampling)[0]))(keys, refs)
    counts = np.bincount(path_codes(out), minlength=len(probs))
    return scipy.stats.chisquare(counts, refs.shape[0] * probs).pvalue


@pytest.mark.parametrize("path_sampling", KERNELS)
def test_brute_force_path_law_on_two_state_hmm(hmm_exact, path_sampling):
    """T-A5: 2-state HMM, T = 3 (8 paths), N = 3, R = 20000 exact starts, one kernel step: chi-square of
    the 8 path frequencies against enumeration, p > 1e-3."""
    hmm, y, paths, probs, refs = hmm_exact
    assert _path_law_pvalue(pt.bootstrap_hmm(hmm, y), refs, probs, path_sampling) > 1e-3


def test_brute_force_path_law_rejects_broken_kernel(hmm_exact):
    hmm, y, paths, probs, refs = hmm_exact
    assert _path_law_pvalue(broken_without_m(pt.bootstrap_hmm(hmm, y)), refs, probs, "backward") < 1e-8


@pytest.mark.smoke
def test_particle_gibbs_chain_long_run_path_law():
    """T-A5 (long run): one particle Gibbs chain from a fixed path, 8 chains x 2500 sweeps, path
    frequencies against enumeration (chi-square on the pooled draws; sweeps are nearly independent at
    T = 3, so the chi-square is only mildly anti-conservative; threshold 1e-4)."""
    hmm, y, paths, probs = hmm_problem(T=3)
    fk = pt.bootstrap_hmm(hmm, y)

    def chain(key):
        def body(state, k):
            state, _ = particle_gibbs_step(k, state, fk, 4)
            return state, state.path
        _, out = jax.lax.scan(body, particle_gibbs_init(jnp.zeros(3, jnp.int32)), jax.random.split(key, 2500))
        return out

    out = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(5), 8))
    counts = np.bincount(path_codes(np.asarray(out[:, 100:]).reshape(-1, 3)), minlength=8)
    assert scipy.stats.chisquare(counts, counts.sum() * probs).pvalue > 1e-4


# --------------------------------------------------------------------------- T-A6 particle Gibbs marginals = RTS
def _pg_marginals(T, n, chains, sweeps, burn, seed):
    ssm, y, rts = lgssm_problem(T=T, seed=2)
    fk = pt.bootstrap_lgssm(ssm, y)

    def chain(key):
        def body(state, k):
            state, info = particle_gibbs_step(k, state, fk, n)
            return state, (state.path[:, 0], info.fraction_changed)
        _, (xs, frac) = jax.lax.scan(body, particle_gibbs_init(jnp.zeros((T, 1))), jax.random.split(key, sweeps))
        return xs[burn:], frac[burn:]

    xs, frac = jax.jit(jax.vmap(chain))(jax.random.split(jax.random.PRNGKey(seed), chains))
    xs = np.asarray(xs)
    chain_means = xs.mean(1)
    z = (chain_means.mean(0) - rts["smoothed_means"][:, 0]) / (chain_means.std(0, ddof=1) / np.sqrt(chains))
    ratio = xs.reshape(-1, T).var(0) / rts["smoothed_covs"][:, 0, 0]
    return z, ratio, float(np.mean(frac))


def test_particle_gibbs_marginals_match_rts():
    """T-A6 (CI size): LGSSM T = 20, N = 16, 16 chains x 150 sweeps (30 burn-in) from the zero path;
    per-t mean z-scores from the spread of the chain means (t with 15 d.o.f., |z| < 5.5, i.e. a
    per-t false-alarm rate ~ 6e-5) and median variance ratio in [0.85, 1.15]."""
    z, ratio, frac = _pg_marginals(T=20, n=16, chains=16, sweeps=150, burn=30, seed=6)
    assert np.max(np.abs(z)) < 5.5, z
    assert 0.85 < np.median(ratio) < 1.15, ratio
    assert frac > 0.5      # backward sampling renews most states (a kernel that stays put gives 0)


@pytest.mark.slow
def test_particle_gibbs_marginals_match_rts_full():
    """T-A6 (full size): T = 50, N = 50, 32 chains x 1000 sweeps (100 burn-in), |z| < 4.5, median
    variance ratio in [0.9, 1.1]."""
    z, ratio, frac = _pg_marginals(T=50, n=50, chains=32, sweeps=1000, burn=100, seed=6)
    print(f"T-A6 full: max|z| = {np.max(np.abs(z)):.2f}, median var ratio = {np.median(ratio):.3f}, renewal = {frac:.3f}")
    assert np.max(np.abs(z)) < Z_TOL, z
    assert 0.9 < np.median(ratio) < 1.1, ratio


# --------------------------------------------------------------------------- T-A13 determinism, jit, vmap, float32
@pytest.mark.smoke
def test_determinism_jit_and_vmap():
    """T-A13: same key => bitwise-identical output; vmap over chains equals one chain at a time."""
    ssm, y, _ = lgssm_problem(T=10)
    fk = pt.bootstrap_lgssm(ssm, y)
    ref = jnp.zeros((10, 1))
    key = jax.random.PRNGKey(7)
    step = jax.jit(lambda k, r: particle_gibbs_step(k, particle_gibbs_init(r), fk, 8))
    (s1, i1), (s2, i2) = step(key, ref), step(key, ref)
    assert np.array_equal(s1.path, s2.path) and np.array_equal(i1.ess, i2.ess)
    assert float(i1.log_evidence) == float(i2.log_evidence)
    keys = jax.random.split(key, 3)
    batched, _ = jax.jit(jax.vmap(step))(keys, jnp.stack([ref] * 3))
    for j in range(3):
        np.testing.assert_allclose(batched.path[j], step(keys[j], ref)[0].path, rtol=1e-12)


def test_info_fields_and_evidence_is_a_valid_conditional_estimate():
    """The reference stays in the system (the CSMC evidence is finite and the pinned-reference
    renewal counts are consistent); with ``"genealogy"`` at N = 2 the path often stays put."""
    ssm, y, _ = lgssm_problem(T=10)
    fk = pt.bootstrap_lgssm(ssm, y)
    path, info = jax.jit(lambda k: conditional_smc(k, fk, jnp.ones((10, 1)), 2, path_sampling="genealogy"))(
        jax.random.PRNGKey(0))
    assert info.ess.shape == (10,) and np.all((info.ess >= 1.0 - 1e-9) & (info.ess <= 2.0 + 1e-9))
    assert np.isfinite(float(info.log_evidence))
    changed = np.any(np.asarray(path) != 1.0, axis=1)
    assert int(info.num_changed) == changed.sum()
    assert float(info.fraction_changed) == pytest.approx(changed.mean())


def test_pytree_states_and_single_step():
    """Dict-valued states work; T = 1 works (no scan steps)."""
    ssm, y, _ = lgssm_problem(T=5)
    base = pt.bootstrap_lgssm(ssm, y)
    fk = pt.FeynmanKac(
        m0=lambda k, n: {"x": base.m0(k, n)},
        m=lambda k, t, xp: {"x": base.m(k, t, xp["x"])},
        log_g=lambda t, xp, x: base.log_g(t, xp["x"], x["x"]),
        log_m=lambda t, xp, x: base.log_m(t, xp["x"], x["x"]),
    )
    path, info = jax.jit(lambda k: conditional_smc(k, fk, {"x": jnp.zeros((5, 1))}, 8))(jax.random.PRNGKey(0))
    assert path["x"].shape == (5, 1) and info.ess.shape == (5,)
    fk1 = pt.bootstrap_lgssm(ssm, y[:1])
    path1, info1 = jax.jit(lambda k: conditional_smc(k, fk1, jnp.zeros((1, 1)), 8))(jax.random.PRNGKey(0))
    assert path1.shape == (1, 1) and np.isfinite(float(info1.log_evidence))


def test_float32_smoke():
    ssm = mp.LinearGaussianSSM(jnp.zeros(1, jnp.float32), jnp.eye(1, dtype=jnp.float32), 0.9 * jnp.eye(1, dtype=jnp.float32),
                               jnp.eye(1, dtype=jnp.float32), jnp.eye(1, dtype=jnp.float32), 0.25 * jnp.eye(1, dtype=jnp.float32))
    y = jnp.array([[0.1], [0.5], [0.3]], jnp.float32)
    fk = pt.bootstrap_lgssm(ssm, y)
    path, info = jax.jit(lambda k: conditional_smc(k, fk, jnp.zeros((3, 1), jnp.float32), 8))(jax.random.PRNGKey(0))
    assert path.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(path)))


def test_bad_input_errors():
    ssm, y, _ = lgssm_problem(T=4)
    fk = pt.bootstrap_lgssm(ssm, y)
    ref = jnp.zeros((4, 1))
    with pytest.raises(ValueError, match="num_particles"):
        conditional_smc(jax.random.PRNGKey(0), fk, ref, 1)
    with pytest.raises(ValueError, match="path_sampling"):
        conditional_smc(jax.random.PRNGKey(0), fk, ref, 4, path_sampling="forward")
    with pytest.raises(ValueError, match="log_m"):
        conditional_smc(jax.random.PRNGKey(0), fk._replace(log_m=None), ref, 4)
    with pytest.raises(ValueError, match="log_m"):
        conditional_smc(jax.random.PRNGKey(0), fk._replace(log_m=None), ref, 4, path_sampling="ancestor")
    jax.eval_shape(lambda: conditional_smc(jax.random.PRNGKey(0), fk._replace(log_m=None), ref, 4,
                                           path_sampling="genealogy"))
    with pytest.raises(ValueError, match="shape"):
        jax.eval_shape(lambda: conditional_smc(jax.random.PRNGKey(0), fk, jnp.zeros((4, 2)), 4))
    with pytest.raises(ValueError, match="time axis"):
        conditional_smc(jax.random.PRNGKey(0), fk, {"a": jnp.zeros((4, 1)), "b": jnp.zeros((3, 1))}, 4)
    with pytest.raises(ValueError, match="log_g"):
        jax.eval_shape(lambda: conditional_smc(jax.random.PRNGKey(0), fk._replace(log_g=lambda t, xp, x: jnp.zeros(3)),
                                               ref, 4))
