"""The BFFG rules and message algebra, one case per (kernel, message) pair, against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from markovppl import _linalg as la
from markovppl.backward import fuse, leaf, marginalize, pullback
from markovppl.guided import forward_guide, sample_noise
from markovppl.kernels import Categorical, Emission, LinearGaussian
from markovppl.kernels.initial import CategoricalLaw, GaussianLaw
from markovppl.messages import categorical as cm
from markovppl.messages import gaussian as gm


def spd(rng, n, jitter=0.1):
    a = rng.normal(size=(n, n))
    return a @ a.T / n + jitter * np.eye(n)


@pytest.mark.parametrize("seed", range(20))
def test_gaussian_pullback_of_partial_observation_is_exact(seed):
    """log h_pa(x) = log N(y; L(Bx+beta), L Q L' + R) for random kernels and rank-deficient L."""
    rng = np.random.default_rng(seed)
    d = rng.integers(1, 5)
    m = rng.integers(1, d + 1)
    B, beta, Q = rng.normal(size=(d, d)), rng.normal(size=d), spd(rng, d)
    L, R, y, x = rng.normal(size=(m, d)), spd(rng, m), rng.normal(size=m), rng.normal(size=d)
    g = leaf(LinearGaussian(jnp.asarray(L), jnp.zeros(m), jnp.asarray(R)), jnp.asarray(y), jnp.zeros(m, bool))
    h = pullback(LinearGaussian(jnp.asarray(B), jnp.asarray(beta), jnp.asarray(Q)), g)
    ref = stats.multivariate_normal(L @ (B @ x + beta), L @ Q @ L.T + R).logpdf(y)
    assert abs(float(gm.evaluate(h, jnp.asarray(x))) - ref) < 1e-10 * max(1, abs(ref))


def test_gaussian_pullback_of_uninformative_message_keeps_constant():
    h = gm.GaussianMessage(jnp.asarray(1.3), jnp.zeros(2), jnp.zeros((2, 2)))
    out = pullback(LinearGaussian(jnp.eye(2), jnp.ones(2), jnp.eye(2)), h)
    assert float(out.c) == pytest.approx(1.3, abs=1e-14)
    assert np.all(np.asarray(out.H) == 0) and np.all(np.asarray(out.F) == 0)


def test_fusion_and_root_marginalisation():
    rng = np.random.default_rng(1)
    a = gm.gaussian_message(0.4, rng.normal(size=3), spd(rng, 3))
    b = gm.gaussian_message(-1.1, rng.normal(size=3), spd(rng, 3, 0.0))
    x = jnp.asarray(rng.normal(size=3))
    assert abs(float(gm.evaluate(fuse(a, b), x)) - float(gm.evaluate(a, x) + gm.evaluate(b, x))) < 1e-12
    # root: log ∫ h dN(m, P) by brute force quadrature in 1-d
    h = gm.gaussian_message(0.2, jnp.array([0.7]), jnp.array([[1.5]]))
    grid = np.linspace(-15, 15, 200_001)
    vals = 0.2 + 0.7 * grid - 0.75 * grid**2 + stats.norm.logpdf(grid, 0.3, 1.2)
    ref = logsumexp(vals) + np.log(grid[1] - grid[0])
    got = marginalize(GaussianLaw(jnp.array([0.3]), jnp.array([[1.2]])), h)
    assert abs(float(got) - ref) < 1e-8
    ca = cm.categorical_message(jnp.log(jnp.array([0.2, 3.0])))
    cb = cm.categorical_message(jnp.log(jnp.array([5.0, 0.1])))
    np.testing.assert_allclose(cm.evaluate(fuse(ca, cb), jnp.arange(2)), np.log([1.0, 0.3]), atol=1e-12)
    assert abs(float(marginalize(CategoricalLaw(jnp.log(jnp.array([0.25, 0.75]))), ca)) - np.log(0.05 + 2.25)) < 1e-12


def test_categorical_pullback_and_emission_leaf():
    rng = np.random.default_rng(2)
    P = rng.dirichlet(np.ones(4), size=4)
    h = cm.categorical_message(jnp.asarray(rng.normal(size=4) * 3))
    out = pullback(Categorical(jnp.asarray(P)), h)
    np.testing.assert_allclose(cm.evaluate(out, jnp.arange(4)), np.log(P @ np.exp(cm.evaluate(h, jnp.arange(4)))), atol=1e-12)
    import numpyro.distributions as dist

    e = Emission(dist.Poisson(jnp.array([1.0, 4.0])))
    g = leaf(e, jnp.array([3, 0]), jnp.array([False, True]))
    np.testing.assert_allclose(g.log_h[0] + g.log_norm[0], stats.poisson.logpmf(3, [1.0, 4.0]), atol=1e-12)
    np.testing.assert_allclose(g.log_h[1] + g.log_norm[1], 0.0, atol=0)  # missing step: h = 1


def test_guiding_with_exact_kernels_has_zero_weights_and_exact_root():
    rng = np.random.default_rng(3)
    A, Q = jnp.asarray(rng.normal(size=(2, 2)) * 0.5), jnp.asarray(spd(rng, 2))
    obs = LinearGaussian(jnp.ones((1, 2)), jnp.zeros(1), jnp.eye(1) * 0.3)
    leaves = leaf(obs, jnp.asarray(rng.normal(size=(6, 1))), jnp.zeros((6, 1), bool))
    from markovppl.backward import backward_filter

    law = GaussianLaw(jnp.zeros(2), jnp.eye(2))
    kernel = LinearGaussian(A, jnp.zeros(2), Q)
    back = backward_filter(law, kernel, leaves)
    noise = sample_noise(jax.random.PRNGKey(0), law, 6, (500,))
    out = forward_guide(law, kernel, back.messages, noise)
    assert out.path.shape == (6, 500, 2) and float(jnp.max(jnp.abs(out.log_weights))) == 0.0


@pytest.mark.parametrize("n", [1, 2, 4, 6])
def test_fused_linear_algebra_matches_library(n):
    rng = np.random.default_rng(n)
    s = jnp.asarray(np.stack([spd(rng, n) for _ in range(3)]))
    b = jnp.asarray(rng.normal(size=(3, n, 2)))
    for fused in (True, False):
        chol = la.cholesky(s, fused=fused)
        np.testing.assert_allclose(chol @ jnp.swapaxes(chol, -1, -2), s, atol=1e-12)
        np.testing.assert_allclose(chol @ la.solve_lower(chol, b, fused=fused), b, atol=1e-12)
        np.testing.assert_allclose(jnp.swapaxes(chol, -1, -2) @ la.solve_lower_transpose(chol, b, fused=fused), b, atol=1e-12)
        np.testing.assert_allclose(la.matmul(s, b, fused=fused), s @ b, atol=1e-12)
    q = jnp.asarray(np.diag([1.0, 0.0, 2.0]))
    r = la.psd_sqrt(q)
    np.testing.assert_allclose(r @ r.T, q, atol=1e-12)
