"""Nonlinear Gaussian kernels guided through a linear auxiliary (bffg.md §1.4, §3 item 4, §5 items 7, 16, 18).

* importance sampling with a mismatched auxiliary is unbiased for the exact Kalman evidence (z-test), and
  dropping the weights fails the same test;
* the nonlinear Mitosis model (f(x) = B atan(x) + beta) agrees with a large bootstrap particle filter;
* the per-edge weights equal the telescoped form computed independently in NumPy;
* jit / vmap / grad of the guided log-likelihood at fixed innovations; an exact auxiliary gives zero weights.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from scipy.stats import multivariate_normal

from markovppl.backward import backward_filter, leaf
from markovppl.backward.tree import tree_backward_filter
from markovppl.graph import balanced_tree
from markovppl.guided import forward_guide
from markovppl.guided.tree import tree_forward_guide
from markovppl.kernels import LinearGaussian, NonlinearGaussian, linearize, time_varying
from markovppl.kernels.initial import GaussianLaw
from markovppl.messages import gaussian as gm
from markovppl.particles import StateSpaceModel, particle_filter
from oracles import kalman_filter
from oracles_tree import bm_leaf_cov

# bffg.md §3 items 1-2 matrices
B = np.array([[0.8, 0.5], [-0.1, 0.8]])
BETA = np.array([0.1, 0.2])
Q = np.diag([0.2, 1.0])
L = np.array([[1.0, 0.0]])
R = np.array([[0.5]])
M0 = np.array([1.0, 0.0])


def _leaves(y):
    y = jnp.asarray(y)
    return leaf(LinearGaussian(jnp.asarray(L), jnp.zeros(1), jnp.asarray(R)), y, jnp.zeros(y.shape, bool))


def _is_estimate(law, kernel, y, num, key, chunks=1):
    """log h~_0, the log-weights of ``num`` guided paths (in ``chunks`` jitted batches)."""
    back = backward_filter(law, kernel, _leaves(y))
    run = jax.jit(lambda z: forward_guide(law, kernel, back.messages, z).log_weights.sum(0))
    T = y.shape[0]
    lws = [run(jax.random.normal(k, (T, num // chunks, 2))) for k in jax.random.split(key, chunks)]
    return float(back.log_evidence), np.concatenate([np.asarray(x) for x in lws])


def _log_mean_exp(lw):
    top = lw.max()
    w = np.exp(lw - top)
    est = top + np.log(w.mean())
    se = w.std() / w.mean() / np.sqrt(lw.size)          # delta-method SE of the log estimate
    return est, se, w


def test_linear_mismatched_auxiliary_is_unbiased():
    """§5 item 7 (a): true linear kernel, auxiliary (B~, beta~, Q~) != truth; mean weight x h~_0 = p(y)."""
    rng = np.random.default_rng(1)
    T = 8
    x = M0 + rng.standard_normal(2)
    ys = []
    for t in range(T):
        if t:
            x = B @ x + BETA + np.sqrt(np.diag(Q)) * rng.standard_normal(2)
        ys.append(L @ x + np.sqrt(R[0, 0]) * rng.standard_normal(1))
    y = np.array(ys)
    exact = kalman_filter(M0, np.eye(2), B, BETA, Q, L, np.zeros(1), R, y)["log_evidence"]
    aux = LinearGaussian(jnp.asarray(0.7 * B), jnp.asarray(BETA - 0.1), jnp.asarray(1.5 * Q))
    Bj, bj, Qj = jnp.asarray(B), jnp.asarray(BETA), jnp.asarray(Q)
    kernel = NonlinearGaussian(lambda x: Bj @ x + bj, lambda x: Qj, aux)
    law = GaussianLaw(jnp.asarray(M0), jnp.eye(2))
    log_h0, lw = _is_estimate(law, kernel, y, 60_000, jax.random.PRNGKey(0))
    assert lw.std() > 0.1                                   # the weights are not trivial
    _, _, w = _log_mean_exp(lw)
    scale = np.exp(lw.max() + log_h0 - exact)               # p-hat / p = scale * mean(w)
    ratio, se = scale * w.mean(), scale * w.std() / np.sqrt(w.size)
    assert abs(ratio - 1.0) < 3 * se, (ratio, se)
    assert se < 0.025                                       # power: a 7.5% bias would be caught
    # broken variant: the auxiliary evidence alone (weights dropped) is far off
    assert abs(np.exp(log_h0 - exact) - 1.0) > 10 * se


def _mitosis_data():
    rng = np.random.default_rng(1)
    x = M0 + rng.standard_normal(2)
    ys = []
    for t in range(6):
        if t:
            x = B @ np.arctan(x) + BETA + np.sqrt(np.diag(Q)) * rng.standard_normal(2)
        ys.append(L @ x + np.sqrt(R[0, 0]) * rng.standard_normal(1))
    return np.array(ys)


def _mitosis(y, num_is, num_pf, pf_runs, is_chunks, shrink):
    """Guided IS estimate (auxiliary N(shrink B x + beta, Q)) and bootstrap-PF estimates of log p(y)."""
    Bj, bj, Qj = jnp.asarray(B), jnp.asarray(BETA), jnp.asarray(Q)
    kernel = NonlinearGaussian(lambda x: Bj @ jnp.arctan(x) + bj, lambda x: Qj, LinearGaussian(shrink * Bj, bj, Qj))
    law = GaussianLaw(jnp.asarray(M0), jnp.eye(2))
    log_h0, lw = _is_estimate(law, kernel, y, num_is, jax.random.PRNGKey(3), is_chunks)
    est, se, w = _log_mean_exp(lw)
    ssm = StateSpaceModel(dist.MultivariateNormal(jnp.asarray(M0), jnp.eye(2)),
                          lambda t, x: dist.MultivariateNormal(jnp.arctan(x) @ Bj.T + bj, Qj),
                          lambda t, x: dist.Normal(x[..., :1], jnp.sqrt(0.5)).to_event(1))
    fk = ssm.bootstrap(jnp.asarray(y))
    run_pf = jax.jit(lambda keys: jax.lax.map(lambda k: particle_filter(k, fk, y.shape[0], num_pf).log_evidence, keys))
    pf = np.asarray(run_pf(jax.random.split(jax.random.PRNGKey(4), pf_runs)))
    ess = w.sum() ** 2 / (w**2).sum() / w.size
    return log_h0 + est, se, pf.mean(), pf.std(ddof=1) / np.sqrt(pf_runs), ess


def test_mitosis_nonlinear_evidence_matches_particle_filter():
    """§5 item 7 (b), CI size. The auxiliary N(0.7 B x + beta, Q) fits B atan(x) + beta better than (B, beta)
    at the states visited (atan' ~ 0.5 at |x| ~ 1): ESS fraction ~0.9, so 5e4 guided draws give a log
    estimate with SE ~1e-3, against 4 bootstrap filters of 2e4 particles (SE of their mean ~2e-3): |diff| < 0.02 is
    checked with power to spare, and the z-score must stay below 4.5."""
    y = _mitosis_data()
    est, se, pf, pf_se, ess = _mitosis(y, 50_000, 20_000, 4, 1, 0.7)
    assert ess > 0.5 and se < 0.003 and pf_se < 0.01, (ess, se, pf_se)
    assert abs(est - pf) < 0.02 and abs(est - pf) < 4.5 * np.hypot(se, pf_se), (est, pf, se, pf_se)


@pytest.mark.slow
def test_mitosis_nonlinear_evidence_full_size():
    """Full size (recorded in docs/pcn.md), with the auxiliary (B, beta, Q) of bffg.md §3 item 4, whose
    weights are heavy-tailed on these data (ESS fraction ~0.02): 4e6 guided draws vs 8 filters of 4e5."""
    y = _mitosis_data()
    est, se, pf, pf_se, ess = _mitosis(y, 4_000_000, 400_000, 8, 40, 1.0)
    print(f"\nmitosis aux (B, beta, Q): IS {est:.4f} +- {se:.4f} (ESS fraction {ess:.3f})   PF {pf:.4f} +- {pf_se:.4f}")
    assert abs(est - pf) < 0.02


# --- 1-D chain with state-dependent variance ---------------------------------------------------------------

A1, S2, TAU2 = 0.9, 0.5, 0.1


def _chain_kernel(sigma2=S2):
    aux = LinearGaussian(jnp.array([[0.7]]), jnp.array([0.1]), jnp.array([[0.8]]))
    return NonlinearGaussian(lambda x: A1 * x, lambda x: sigma2 * (1.0 + 0.3 * x[:, None] ** 2), aux)


def _chain_data(T=12):
    rng = np.random.default_rng(7)
    x, ys = rng.standard_normal(), []
    for t in range(T):
        if t:
            x = A1 * x + np.sqrt(S2 * (1 + 0.3 * x**2)) * rng.standard_normal()
        ys.append(x + np.sqrt(TAU2) * rng.standard_normal())
    return np.array(ys)[:, None]


def _chain_leaves(y):
    y = jnp.asarray(y)
    return leaf(LinearGaussian(jnp.eye(1), jnp.zeros(1), TAU2 * jnp.eye(1)), y, jnp.zeros(y.shape, bool))


def test_per_edge_weights_equal_telescoped_form():
    """§5 item 18: with h~_{t-1} = g_{t-1} (kappa~ h~_t), the per-edge weights telescope to
    sum_{t>=1} [log (kappa h~_t)(x_{t-1}) - log h~_{t-1}(x_{t-1}) + log g_{t-1}(x_{t-1})], evaluated here in NumPy
    from the stored messages with a scalar closed form of (kappa h~)(x) (P~ != P); agreement to 1e-10."""
    y = _chain_data()
    kernel = _chain_kernel()
    law = GaussianLaw(jnp.zeros(1), jnp.eye(1))
    z = jax.random.normal(jax.random.PRNGKey(5), (y.shape[0], 16, 1))

    @jax.jit
    def run(y, z):
        back = backward_filter(law, kernel, _chain_leaves(y))
        return back, forward_guide(law, kernel, back.messages, z)

    back, out = run(y, z)
    c, F, H = (np.asarray(a) for a in back.messages)
    x = np.asarray(out.path)[..., 0]                                   # (T, 16)
    T = y.shape[0]

    def log_h(t, v):
        return c[t] + F[t, 0] * v - 0.5 * H[t, 0, 0] * v**2

    def log_kappa_h(t, v):                                             # log int h_t(u) N(u; 0.9 v, Q(v)) du
        m, s = A1 * v, S2 * (1 + 0.3 * v**2)
        prec = 1.0 / s + H[t, 0, 0]
        lin = m / s + F[t, 0]
        return c[t] - 0.5 * np.log(s * prec) + 0.5 * lin**2 / prec - 0.5 * m**2 / s

    log_g = -0.5 * (y[:, 0, None] - x) ** 2 / TAU2 - 0.5 * np.log(2 * np.pi * TAU2)
    # h_t = g_t (kappa~ h_{t+1}) telescopes: prod_t w_t = prod_t (kappa h_t)(x_{t-1}) / (h_{t-1}(x_{t-1}) / g_{t-1}(x_{t-1}))
    tele = sum(log_kappa_h(t, x[t - 1]) - log_h(t - 1, x[t - 1]) + log_g[t - 1] for t in range(1, T))
    per_edge = np.asarray(out.log_weights).sum(0)
    assert np.abs(per_edge).max() > 0.05
    np.testing.assert_allclose(per_edge, tele, rtol=0, atol=1e-10)


def test_exact_auxiliary_gives_zero_weights():
    y = _chain_data()
    aux = LinearGaussian(jnp.array([[A1]]), jnp.zeros(1), jnp.array([[S2]]))
    kernel = NonlinearGaussian(lambda x: A1 * x, lambda x: S2 * jnp.eye(1), aux)
    law = GaussianLaw(jnp.zeros(1), jnp.eye(1))
    z = jax.random.normal(jax.random.PRNGKey(0), (y.shape[0], 500, 1))

    @jax.jit
    def run(y, z):
        back = backward_filter(law, kernel, _chain_leaves(y))
        exact = backward_filter(law, aux, _chain_leaves(y))
        return forward_guide(law, kernel, back.messages, z), forward_guide(law, aux, exact.messages, z)

    out, ref = run(y, z)
    assert float(jnp.abs(out.log_weights).max()) < 1e-12
    np.testing.assert_allclose(out.path, ref.path, atol=1e-12)


def _guided_loglik(log_s2, z, y):
    kernel = _chain_kernel(jnp.exp(log_s2))
    law = GaussianLaw(jnp.zeros(1), jnp.eye(1))
    back = backward_filter(law, kernel, _chain_leaves(y))
    return back.log_evidence + forward_guide(law, kernel, back.messages, z).log_weights.sum()


@pytest.mark.smoke
def test_jit_vmap_grad_of_guided_loglik():
    """§5 item 16 for mode B: at fixed z, jit compiles once over 10 parameters, vmap equals a loop to
    1e-12, and grad matches central finite differences to 1e-5 (relative)."""
    y = jnp.asarray(_chain_data())
    z = jax.random.normal(jax.random.PRNGKey(1), (y.shape[0], 1))
    traces = []

    def counted(t, z, y):
        traces.append(1)
        return _guided_loglik(t, z, y)

    f = jax.jit(counted)
    thetas = jnp.linspace(-1.5, 0.5, 10)
    loop = np.array([float(f(t, z, y)) for t in thetas])
    assert len(traces) == 1
    np.testing.assert_allclose(jax.vmap(lambda t: _guided_loglik(t, z, y))(thetas[:8]), loop[:8], rtol=0, atol=1e-12)
    g = jax.jit(jax.grad(_guided_loglik, argnums=(0, 1)))
    eps = 1e-5
    for t in (-1.0, float(np.log(S2)), 0.3):
        fd = (float(f(jnp.asarray(t + eps, thetas.dtype), z, y)) - float(f(jnp.asarray(t - eps, thetas.dtype), z, y))) / (2 * eps)
        g_theta, g_z = g(jnp.asarray(t), z, y)
        assert abs(float(g_theta) - fd) < 1e-5 * max(1.0, abs(fd))
        assert bool(jnp.isfinite(g_z).all())
    assert len(traces) == 1


def test_float32_guided_weights_match_float64():
    y = _chain_data()
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (y.shape[0], 64, 1)))

    def run(dtype):
        kernel = NonlinearGaussian(lambda x: A1 * x, lambda x: S2 * (1.0 + 0.3 * x[:, None] ** 2),
                                   LinearGaussian(jnp.array([[0.7]], dtype), jnp.array([0.1], dtype),
                                                  jnp.array([[0.8]], dtype)))
        law = GaussianLaw(jnp.zeros(1, dtype), jnp.eye(1, dtype=dtype))
        g = leaf(LinearGaussian(jnp.eye(1, dtype=dtype), jnp.zeros(1, dtype), TAU2 * jnp.eye(1, dtype=dtype)),
                 jnp.asarray(y, dtype), jnp.zeros(y.shape, bool))
        back = backward_filter(law, kernel, g)
        out = forward_guide(law, kernel, back.messages, jnp.asarray(z, dtype))
        return back.log_evidence, out.log_weights.sum(0), out.path

    ev32, lw32, x32 = jax.jit(run, static_argnums=0)(jnp.float32)
    ev64, lw64, _ = jax.jit(run, static_argnums=0)(jnp.float64)
    assert lw32.dtype == jnp.float32 and x32.dtype == jnp.float32
    assert abs(float(ev32) - float(ev64)) < 1e-4 * abs(float(ev64))
    np.testing.assert_allclose(lw32, lw64, atol=2e-4)


def test_tree_with_nonlinear_edges_is_unbiased():
    """The same kernel on a tree (edges batched on a leading axis): a linear true kernel with a mismatched
    auxiliary gives an unbiased evidence estimate of the dense Brownian-motion tree evidence."""
    tree = balanced_tree(3)
    n = tree.num_nodes
    sigma2, tau2 = 0.5, 0.1
    rng = np.random.default_rng(11)
    leaves = np.asarray(tree.leaves)
    cov = bm_leaf_cov(tree.parent, tree.lengths, leaves, np.eye(1) * sigma2, np.zeros((1, 1)))
    y_leaves = rng.multivariate_normal(np.zeros(len(leaves)), cov + tau2 * np.eye(len(leaves)))
    exact = multivariate_normal(np.zeros(len(leaves)), cov + tau2 * np.eye(len(leaves))).logpdf(y_leaves)
    y = np.zeros((n, 1))
    y[leaves, 0] = y_leaves
    missing = np.ones((n, 1), bool)
    missing[leaves] = False
    g = leaf(LinearGaussian(jnp.eye(1), jnp.zeros(1), tau2 * jnp.eye(1)), jnp.asarray(y), jnp.asarray(missing))
    ne = n - 1
    aux = LinearGaussian(jnp.full((ne, 1, 1), 0.8), jnp.full((ne, 1), 0.1), jnp.full((ne, 1, 1), 0.8)).prepared()
    kernel = NonlinearGaussian(lambda x: x, lambda x: sigma2 * jnp.eye(1), aux)
    root = GaussianLaw(jnp.zeros(1), jnp.zeros((1, 1)))
    back = tree_backward_filter(tree, kernel, g, root)
    z = jax.random.normal(jax.random.PRNGKey(9), (100_000, n, 1))
    lw = jax.jit(jax.vmap(lambda zz: tree_forward_guide(tree, kernel, back.messages, zz, root)[1].sum()))(z)
    lw = np.asarray(lw)
    scale = np.exp(lw.max() + float(back.log_evidence) - exact)
    w = np.exp(lw - lw.max())
    ratio, se = scale * w.mean(), scale * w.std() / np.sqrt(w.size)
    assert lw.std() > 0.1 and se < 0.02
    assert abs(ratio - 1.0) < 3 * se, (ratio, se)


def test_linearize_matches_analytic_tangent_and_time_varying_anchor():
    f = lambda x: jnp.array([jnp.sin(x[0]) * x[1], x[0] ** 2])
    cov = lambda x: jnp.diag(1.0 + x**2)
    a = jnp.array([0.3, -1.2])
    aux = linearize(f, cov, a)
    jac = np.array([[np.cos(0.3) * -1.2, np.sin(0.3)], [0.6, 0.0]])
    np.testing.assert_allclose(aux.A, jac, atol=1e-14)
    np.testing.assert_allclose(aux.b, np.asarray(f(a)) - jac @ np.asarray(a), atol=1e-14)
    np.testing.assert_allclose(aux.Q, np.diag([1.09, 2.44]), atol=1e-14)
    anchors = jnp.stack([a, 2 * a, -a])
    tv = linearize(f, cov, time_varying(anchors))
    assert tv.A.value.shape == (3, 2, 2)
    np.testing.assert_allclose(tv.A.value[1], linearize(f, cov, 2 * a).A, atol=1e-14)
    kernel = NonlinearGaussian.linearized(f, cov, time_varying(anchors))
    law = GaussianLaw(jnp.zeros(2), jnp.eye(2))
    y = jnp.array([[0.1], [0.4], [-0.3], [0.2]])
    noise = jax.random.normal(jax.random.PRNGKey(0), (4, 10, 2))
    out = jax.jit(lambda y, z: forward_guide(law, kernel, backward_filter(law, kernel, _leaves(y)).messages, z))(y, noise)
    assert out.path.shape == (4, 10, 2) and bool(jnp.isfinite(out.log_weights).all())


def test_bad_input_raises():
    aux = LinearGaussian(jnp.eye(2), jnp.zeros(2), jnp.eye(2))
    with pytest.raises(TypeError, match="callable"):
        NonlinearGaussian(1.0, lambda x: jnp.eye(2), aux)
    with pytest.raises(TypeError, match="LinearGaussian"):
        NonlinearGaussian(lambda x: x, lambda x: jnp.eye(2), (jnp.eye(2), jnp.zeros(2), jnp.eye(2)))
    with pytest.raises(ValueError, match="mean_fn"):
        NonlinearGaussian(lambda x: x[:1], lambda x: jnp.eye(2), aux)
    with pytest.raises(ValueError, match="cov_fn"):
        NonlinearGaussian(lambda x: x, lambda x: jnp.eye(3), aux)
    with pytest.raises(ValueError, match="same dimension"):
        NonlinearGaussian(lambda x: x, lambda x: jnp.eye(2), LinearGaussian(jnp.ones((1, 2)), jnp.zeros(1), jnp.eye(1)))
    with pytest.raises(ValueError, match="positive definite"):
        NonlinearGaussian(lambda x: x, lambda x: jnp.diag(jnp.array([1.0, -1.0])), aux)
    with pytest.raises(ValueError, match="finite"):
        NonlinearGaussian(lambda x: x + jnp.nan, lambda x: jnp.eye(2), aux)
    with pytest.raises(ValueError, match="positive semi-definite"):
        NonlinearGaussian(lambda x: x, lambda x: jnp.eye(2), LinearGaussian(jnp.eye(2), jnp.zeros(2), -jnp.eye(2)))
    with pytest.raises(ValueError, match="anchor"):
        linearize(lambda x: x, lambda x: jnp.eye(1), 0.0)


def test_pullback_uses_the_auxiliary():
    aux = LinearGaussian(jnp.array([[0.5]]), jnp.array([0.2]), jnp.array([[0.3]]))
    kernel = NonlinearGaussian(jnp.sin, lambda x: jnp.eye(1), aux)
    h = gm.gaussian_message(0.1, jnp.array([0.4]), jnp.array([[2.0]]))
    from markovppl.backward import pullback
    got, ref = pullback(kernel, h), pullback(aux, h)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)


def test_parallel_backward_filter_runs_on_the_auxiliary():
    from markovppl.backward import backward_filter_parallel

    aux = LinearGaussian(jnp.asarray(B), jnp.asarray(BETA), jnp.asarray(Q))
    kernel = NonlinearGaussian(lambda x: jnp.asarray(B) @ jnp.arctan(x) + jnp.asarray(BETA), lambda x: jnp.asarray(Q), aux)
    law = GaussianLaw(jnp.asarray(M0), jnp.eye(2))
    y = jnp.asarray(np.random.default_rng(0).normal(size=(12, 1)))
    seq, par = backward_filter(law, kernel, _leaves(y)), backward_filter_parallel(law, kernel, _leaves(y))
    assert abs(float(seq.log_evidence) - float(par.log_evidence)) < 1e-9
    np.testing.assert_allclose(par.messages.H, seq.messages.H, atol=1e-9)
