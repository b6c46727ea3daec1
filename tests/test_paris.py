"""PaRIS (ppg_conformal.md §C T-A7, T-A13): consistency and N-scaling against the exact smoothed
additive functionals of the RTS oracle, exactness of each backward sampler (with a broken variant
that must fail), determinism, jit/vmap and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from markovppl import particles as pt
from markovppl.particles.csmc import backward_log_weights
from markovppl.particles.paris import _exact_draws, _hybrid_draws, _rejection_draws, conditional_paris, paris_smoother
from test_csmc import lgssm_problem

Z_TOL = 4.5


def sum_and_cross(t, xp, x):
    """h_t = (x_t, x_{t-1} x_t), so that h_{0:T-1} = (sum_t x_t, sum_{t>=1} x_{t-1} x_t)."""
    return {"sum": x[:, 0], "cross": jnp.where(t > 0, xp[:, 0] * x[:, 0], 0.0)}


def exact_functionals(rts):
    m = rts["smoothed_means"][:, 0]
    cross = rts["smoothed_cross_covs"][:, 0, 0] + m[:-1] * m[1:]
    return {"sum": m.sum(), "cross": cross.sum()}


def _estimates(fk, T, n, reps, seed=0, **kw):
    run = jax.jit(jax.vmap(lambda k: paris_smoother(k, fk, sum_and_cross, T, n, **kw).estimate))
    return jax.tree.map(np.asarray, run(jax.random.split(jax.random.PRNGKey(seed), reps)))


# --------------------------------------------------------------------------- T-A7 consistency and N-scaling
def _scaling(T, ns, reps, sampler="exact"):
    ssm, y, rts = lgssm_problem(T=T, seed=1)
    fk = pt.bootstrap_lgssm(ssm, y)
    exact = exact_functionals(rts)
    rmse, z_last = {k: [] for k in exact}, {}
    for n in ns:
        est = _estimates(fk, T, n, reps, seed=n, backward_sampler=sampler)
        for k in exact:
            err = est[k] - exact[k]
            rmse[k].append(np.sqrt(np.mean(err**2)))
            z_last[k] = err.mean() / (err.std(ddof=1) / np.sqrt(reps))
    slopes = {k: np.polyfit(np.log(ns), np.log(rmse[k]), 1)[0] for k in exact}
    return rmse, slopes, z_last


def test_paris_consistency_and_n_scaling():
    """T-A7 (CI size): LGSSM T = 10, K = 2, hybrid sampler, R = 64 seeds at N in {16, 64, 256}: the
    RMSE of both functionals falls like N^{-1/2} (log-log slope in [-0.75, -0.25]; the slope's MC
    error is ~0.06) and the largest-N mean error is within 4.5 SE of the exact value."""
    rmse, slopes, z = _scaling(T=10, ns=[16, 64, 256], reps=64, sampler="hybrid")
    for k in slopes:
        assert -0.75 < slopes[k] < -0.25, (k, slopes[k], rmse[k])
        assert abs(z[k]) < Z_TOL, (k, z[k])


@pytest.mark.slow
def test_paris_consistency_and_n_scaling_full():
    """T-A7 (full size): T = 100, N in {100, 400, 1600}, R = 100, slope within -0.5 +- 0.2."""
    rmse, slopes, z = _scaling(T=100, ns=[100, 400, 1600], reps=100, sampler="hybrid")
    print(f"T-A7 full: rmse {rmse}, slopes {slopes}, z at N=1600 {z}")
    for k in slopes:
        assert -0.7 < slopes[k] < -0.3, (k, slopes[k], rmse[k])
        assert abs(z[k]) < Z_TOL, (k, z[k])


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["exact", "rejection"])
def test_samplers_agree_with_the_exact_functional(sampler):
    """All samplers estimate the same functional: R = 100 seeds at N = 100, T = 10, mean error within
    4.5 SE of the RTS value (the PaRIS bias at this N is far below the SE)."""
    ssm, y, rts = lgssm_problem(T=10, seed=1)
    exact = exact_functionals(rts)
    est = _estimates(pt.bootstrap_lgssm(ssm, y), 10, 100, 100, seed=3, backward_sampler=sampler, max_trials=3)
    for k in exact:
        err = est[k] - exact[k]
        assert abs(err.mean()) < Z_TOL * err.std(ddof=1) / 10, (k, err.mean(), err.std())


# --------------------------------------------------------------------------- backward draws are exact
def _draw_residuals(sampler, reps=20_000, broken=False):
    """Given a fixed generation t-1, draw (a_i, x_t^i) as the filter does and the backward indices;
    return z-scores of the per-replicate sums of (1{J = j} - Lambda_t(i, j)) f(x_t^i) for f = 1 and
    f(x) = x (mean zero for an exact sampler)."""
    ssm, y, _ = lgssm_problem(T=3)
    fk = pt.bootstrap_lgssm(ssm, y)
    n = 5
    x_prev = jnp.linspace(-2.0, 2.0, n)[:, None]
    lw_prev = jnp.log(jnp.array([0.1, 0.3, 0.2, 0.25, 0.15]))

    def one(key):
        k1, k2, k3, k4 = jax.random.split(key, 4)
        a = pt.multinomial(k1, lw_prev, n)
        x_t = fk.m(k2, 1, x_prev[a])
        if sampler == "hybrid":
            anc = jax.random.randint(k4, (n,), 0, n) if broken else a     # broken: fall back to a uniform index
            J = _hybrid_draws(k3, fk, 1, lw_prev, x_prev, x_t, anc, 2, 1, False)
        elif sampler == "rejection":
            J = _rejection_draws(k3, fk, 1, lw_prev, x_prev, x_t, 2, 2)
        else:
            J = _exact_draws(k3, fk if not broken else fk._replace(log_m=lambda t, xp, x: jnp.zeros(xp.shape[0])),
                             1, lw_prev, x_prev, x_t, 2)
        p = jax.nn.softmax(jax.vmap(lambda xi: backward_log_weights(fk, 1, lw_prev, x_prev, xi))(x_t), axis=-1)
        resid = (J[..., None] == jnp.arange(n)) - p[:, None, :]                  # (n, K, n)
        # test functions 1 and x_t^i: the law of J must hold given the new particle, not just on average
        return jnp.concatenate([resid.sum((0, 1)), (resid * x_t[:, :, None]).sum((0, 1))])

    d = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), reps)))
    return d.mean(0) / (d.std(0, ddof=1) / np.sqrt(reps))


@pytest.mark.parametrize("sampler", ["exact", "rejection", "hybrid"])
def test_backward_draws_follow_the_backward_kernel(sampler):
    """Each sampler's draws have the law Lambda_t(i, .) given the new particle (10 z-scores over 20000
    replicates; max_trials is small so the fallbacks run often). Power: the broken variants fail
    (exact draws that omit m_t; a hybrid whose fallback is a uniform index)."""
    z = _draw_residuals(sampler)
    assert np.max(np.abs(z)) < Z_TOL, z


@pytest.mark.parametrize("sampler", ["exact", "hybrid"])
def test_broken_backward_draws_fail(sampler):
    z = _draw_residuals(sampler, broken=True)
    assert np.max(np.abs(z)) > 10.0, z


# --------------------------------------------------------------------------- conditional PaRIS
def test_conditional_paris_pins_reference_and_stores_system():
    ssm, y, _ = lgssm_problem(T=6)
    fk = pt.bootstrap_lgssm(ssm, y)
    ref = jnp.linspace(-1.0, 1.0, 6)[:, None]
    res = jax.jit(lambda k: conditional_paris(k, fk, sum_and_cross, ref, 8, num_backward=1))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(res.particles[:, 0], ref)                  # (K = 1 is allowed)
    assert res.backward_indices.shape == (6, 8, 1) and res.log_weights.shape == (6, 8)
    assert int(res.backward_indices.min()) >= 0 and int(res.backward_indices.max()) < 8
    w = np.exp(np.asarray(res.log_weights[-1]))
    assert res.estimate["sum"].shape == () and np.isclose(w.sum(), 1.0)


# --------------------------------------------------------------------------- T-A13 hygiene and errors
@pytest.mark.smoke
def test_determinism_and_vmap():
    ssm, y, _ = lgssm_problem(T=6)
    fk = pt.bootstrap_lgssm(ssm, y)
    run = jax.jit(lambda k: paris_smoother(k, fk, sum_and_cross, 6, 16, backward_sampler="hybrid"))
    a, b = run(jax.random.PRNGKey(1)), run(jax.random.PRNGKey(1))
    assert float(a.estimate["sum"]) == float(b.estimate["sum"]) and float(a.log_evidence) == float(b.log_evidence)
    keys = jax.random.split(jax.random.PRNGKey(2), 3)
    batched = jax.vmap(run)(keys)
    for j in range(3):
        np.testing.assert_allclose(batched.estimate["cross"][j], run(keys[j]).estimate["cross"], rtol=1e-12)
    assert a.running_estimates["sum"].shape == (6,) and a.ess.shape == (6,)


def test_bad_input_errors():
    ssm, y, _ = lgssm_problem(T=4)
    fk = pt.bootstrap_lgssm(ssm, y)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="num_particles"):
        paris_smoother(key, fk, sum_and_cross, 4, 1)
    with pytest.raises(ValueError, match="num_backward"):
        paris_smoother(key, fk, sum_and_cross, 4, 8, num_backward=0)
    with pytest.raises(ValueError, match="backward_sampler"):
        paris_smoother(key, fk, sum_and_cross, 4, 8, backward_sampler="mcmc")
    with pytest.raises(ValueError, match="log_m"):
        paris_smoother(key, fk._replace(log_m=None), sum_and_cross, 4, 8)
    with pytest.raises(ValueError, match="log_m_bound"):
        paris_smoother(key, fk._replace(log_m_bound=None), sum_and_cross, 4, 8, backward_sampler="hybrid")
    with pytest.raises(ValueError, match="num_steps"):
        paris_smoother(key, fk, sum_and_cross, 0, 8)
    with pytest.raises(ValueError, match="max_trials"):
        paris_smoother(key, fk, sum_and_cross, 4, 8, backward_sampler="rejection", max_trials=0)
    with pytest.raises(ValueError, match="leading axis"):
        jax.eval_shape(lambda: paris_smoother(key, fk, lambda t, xp, x: jnp.zeros(3), 4, 8))
    with pytest.raises(ValueError, match="floating"):
        jax.eval_shape(lambda: paris_smoother(key, fk, lambda t, xp, x: jnp.zeros(8, jnp.int32), 4, 8))
    with pytest.raises(ValueError, match="shape"):
        jax.eval_shape(lambda: conditional_paris(key, fk, sum_and_cross, jnp.zeros((4, 3)), 8))
