"""Parisian particle Gibbs (ppg_conformal.md §C T-A4, T-A5, T-A8, T-A13): one-step invariance of the
PPG path kernel from exact smoother draws, E[mu] = the exact functional at stationarity, the
brute-force path law on a 2-state HMM, the Rao-Blackwell identity, the roll-out estimator against
the RTS value; broken variants fail the same checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import markovppl as mp
from markovppl import particles as pt
from markovppl.particles.paris import conditional_paris
from markovppl.particles.ppg import parisian_particle_gibbs, path_functional, ppg_init, ppg_step, trace_path
from test_csmc import broken_without_m, hmm_problem, lgssm_problem, mean_var_z, path_codes

Z_TOL = 4.5


def sum_x(t, xp, x):
    return x[:, 0]


def sum_and_cross(t, xp, x):
    return {"sum": x[:, 0], "cross": jnp.where(t > 0, xp[:, 0] * x[:, 0], 0.0)}


def exact_functionals(rts):
    m = rts["smoothed_means"][:, 0]
    return {"sum": m.sum(), "cross": (rts["smoothed_cross_covs"][:, 0, 0] + m[:-1] * m[1:]).sum()}


@pytest.fixture(scope="module")
def lgssm_exact_draws():
    ssm, y, rts = lgssm_problem(T=10)
    return ssm, y, rts, ssm.posterior_sample(jax.random.PRNGKey(10), y, (4000,))


def _one_ppg_step(fk, refs, n, sampler="exact", seed=11):
    keys = jax.random.split(jax.random.PRNGKey(seed), refs.shape[0])
    run = jax.jit(jax.vmap(lambda k, r: ppg_step(k, ppg_init(r), fk, sum_and_cross, n, backward_sampler=sampler)))
    state, info = run(keys, refs)
    return np.asarray(state.path)[..., 0], jax.tree.map(np.asarray, info.estimate)


# --------------------------------------------------------------------------- T-A4 invariance + E[mu]
@pytest.mark.parametrize("n,sampler", [(3, "exact"), (3, "hybrid"), pytest.param(8, "exact", marks=pytest.mark.slow)])
def test_ppg_one_step_invariance_and_unbiased_mu_at_stationarity(lgssm_exact_draws, n, sampler):
    """T-A4 for PPG variant (a): R = 4000 exact draws, one PPG step (K = 2): per-t mean/variance
    z-scores (|z| < 4.5), and since the start is exact, E[mu] equals the exact functionals
    (Rao-Blackwell identity + invariance), z-tested for sum x_t and sum x_{t-1} x_t."""
    ssm, y, rts, refs = lgssm_exact_draws
    out, mu = _one_ppg_step(pt.bootstrap_lgssm(ssm, y), refs, n, sampler)
    z_mean, z_var = mean_var_z(out, rts["smoothed_means"][:, 0], rts["smoothed_covs"][:, 0, 0])
    assert np.max(np.abs(z_mean)) < Z_TOL and np.max(np.abs(z_var)) < Z_TOL, (z_mean, z_var)
    exact = exact_functionals(rts)
    for k in exact:
        z = (mu[k].mean() - exact[k]) / (mu[k].std(ddof=1) / np.sqrt(mu[k].shape[0]))
        assert abs(z) < Z_TOL, (k, z)


def test_broken_ppg_fails_invariance(lgssm_exact_draws):
    """Power: the same check on PPG whose backward weights omit m_t fails by a wide margin."""
    ssm, y, rts, refs = lgssm_exact_draws
    out, _ = _one_ppg_step(broken_without_m(pt.bootstrap_lgssm(ssm, y)), refs, 3)
    z_mean, z_var = mean_var_z(out, rts["smoothed_means"][:, 0], rts["smoothed_covs"][:, 0, 0])
    assert max(np.max(np.abs(z_mean)), np.max(np.abs(z_var))) > 10.0


# --------------------------------------------------------------------------- T-A5 brute force (HMM)
def _ppg_path_law_pvalue(fk, reps=20_000):
    hmm, y, paths, probs = hmm_problem(T=3)
    codes = jax.random.choice(jax.random.PRNGKey(12), len(probs), (reps,), p=jnp.asarray(probs))
    refs = jnp.asarray(paths)[codes].astype(jnp.int32)
    h = lambda t, xp, x: (x == 1).astype(jnp.float64)
    keys = jax.random.split(jax.random.PRNGKey(13), reps)
    out = jax.jit(jax.vmap(lambda k, r: ppg_step(k, ppg_init(r), fk(hmm, y), h, 3)[0].path))(keys, refs)
    counts = np.bincount(path_codes(out), minlength=len(probs))
    return scipy.stats.chisquare(counts, reps * probs).pvalue


def test_ppg_brute_force_path_law():
    """T-A5 for PPG: 2-state HMM, T = 3, N = 3, K = 2, 20000 exact starts, one step; chi-square of the
    8 path frequencies p > 1e-3, and the broken kernel (no m_t) gives p < 1e-8."""
    assert _ppg_path_law_pvalue(pt.bootstrap_hmm) > 1e-3
    assert _ppg_path_law_pvalue(lambda hmm, y: broken_without_m(pt.bootstrap_hmm(hmm, y))) < 1e-8


# --------------------------------------------------------------------------- T-A8 Rao-Blackwell identity
@pytest.mark.smoke
def test_rao_blackwell_identity():
    """T-A8: for one conditional PaRIS sweep (system fixed), the mean of h over 10^4 traced paths
    equals mu within 4.5 SE; a tracing that picks the last slot uniformly (ignoring W_{T-1}) fails."""
    ssm, y, rts = lgssm_problem(T=15, seed=3)
    fk = pt.bootstrap_lgssm(ssm, y)
    ref = jnp.asarray(rts["smoothed_means"])
    system = jax.jit(lambda k: conditional_paris(k, fk, sum_and_cross, ref, 6, num_backward=3))(jax.random.PRNGKey(14))

    def h_of_trace(key, sys):
        idx = trace_path(key, sys)
        return path_functional(sum_and_cross, system.particles[jnp.arange(15), idx])

    keys = jax.random.split(jax.random.PRNGKey(15), 10_000)
    vals = jax.tree.map(np.asarray, jax.jit(jax.vmap(lambda k: h_of_trace(k, system)))(keys))
    broken_sys = system._replace(log_weights=jnp.zeros_like(system.log_weights))   # uniform last-slot choice
    broken = jax.tree.map(np.asarray, jax.jit(jax.vmap(lambda k: h_of_trace(k, broken_sys)))(keys))
    for k in vals:
        se = vals[k].std(ddof=1) / 100
        assert abs(vals[k].mean() - float(system.estimate[k])) < Z_TOL * se, (k, vals[k].mean(), system.estimate[k])
    assert max(abs(broken[k].mean() - float(system.estimate[k])) / (broken[k].std(ddof=1) / 100) for k in broken) > 10


def test_path_functional_matches_direct_sum():
    path = jnp.array([[0.5], [-1.0], [2.0], [0.25]])
    got = path_functional(sum_and_cross, path)
    assert float(got["sum"]) == pytest.approx(1.75)
    assert float(got["cross"]) == pytest.approx(0.5 * -1.0 + -1.0 * 2.0 + 2.0 * 0.25)


# --------------------------------------------------------------------------- roll-out estimator
def test_rollout_estimator_matches_rts():
    """PPG roll-out from a zero path (not stationary): 16 independent chains, k = 150, k0 = 30, N = 16;
    the mean of the 16 roll-out estimates is within 4.5 SE of the exact functionals (t with 15 d.o.f.
    at 4.5: per-functional false alarm ~ 4e-4)."""
    ssm, y, rts = lgssm_problem(T=20, seed=4)
    fk = pt.bootstrap_lgssm(ssm, y)
    run = jax.jit(jax.vmap(lambda k: parisian_particle_gibbs(k, fk, sum_and_cross, jnp.zeros((20, 1)), 16, 150,
                                                             burn_in=30, backward_sampler="hybrid")))
    res = run(jax.random.split(jax.random.PRNGKey(16), 16))
    exact = exact_functionals(rts)
    for k in exact:
        est = np.asarray(res.estimate[k])
        z = (est.mean() - exact[k]) / (est.std(ddof=1) / 4)
        assert abs(z) < Z_TOL, (k, z)
    assert res.estimates["sum"].shape == (16, 150) and res.path.shape == (16, 20, 1)
    assert float(np.mean(res.fraction_changed)) > 0.5


# --------------------------------------------------------------------------- T-A13 hygiene and errors
def test_determinism_and_errors():
    ssm, y, _ = lgssm_problem(T=5)
    fk = pt.bootstrap_lgssm(ssm, y)
    ref = jnp.zeros((5, 1))
    run = jax.jit(lambda k: parisian_particle_gibbs(k, fk, sum_x, ref, 4, 5, burn_in=1))
    a, b = run(jax.random.PRNGKey(0)), run(jax.random.PRNGKey(0))
    assert np.array_equal(a.estimates, b.estimates) and np.array_equal(a.path, b.path)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="burn_in"):
        parisian_particle_gibbs(key, fk, sum_x, ref, 4, 5, burn_in=5)
    with pytest.raises(ValueError, match="num_iterations"):
        parisian_particle_gibbs(key, fk, sum_x, ref, 4, 0)
    with pytest.raises(ValueError, match="num_particles"):
        ppg_step(key, ppg_init(ref), fk, sum_x, 1)
    with pytest.raises(ValueError, match="log_m"):
        ppg_step(key, ppg_init(ref), fk._replace(log_m=None), sum_x, 4)


def test_float32_smoke():
    """PPG with the hybrid sampler keeps float32 states and estimates."""
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    ssm = mp.LinearGaussianSSM(f32(jnp.zeros(1)), f32(jnp.eye(1)), f32(0.9 * jnp.eye(1)), f32(jnp.eye(1)),
                               f32(jnp.eye(1)), f32(0.25 * jnp.eye(1)))
    fk = pt.bootstrap_lgssm(ssm, f32(jnp.array([[0.1], [0.5], [0.3]])))
    state, info = jax.jit(lambda k: ppg_step(k, ppg_init(jnp.zeros((3, 1), jnp.float32)), fk, sum_x, 8,
                                             backward_sampler="hybrid"))(jax.random.PRNGKey(0))
    assert state.path.dtype == jnp.float32 and info.estimate.dtype == jnp.float32
    assert np.isfinite(float(info.estimate))
