"""pCN moves on innovations + NUTS / random walk on parameters (bffg.md §1.8, §4.4; §5 items 13 and 15).

* mechanics: acceptance exactly 1 with exact guiding, lag-1 correlation of the innovations = rho, the
  z-posterior is N(0, I) under exact guiding, and a pCN step that keeps the prior ratio (a classic bug)
  fails the same variance check; bitwise-reproducible paths; adaptation frozen after warm-up;
* NumPyro Gibbs recovering known posteriors: the linear-Gaussian tree (grid posterior from the dense
  Brownian-motion evidence), a chain with state-dependent variance Q(x) = s2 (1 + 0.3 x^2) (grid posterior
  from a fine-grid forward algorithm), with NUTS and with the random-walk parameter block;
* torus moves for uniform innovations; ArviZ layout; bad input.
"""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC
from scipy.stats import multivariate_normal, norm

from markovppl.backward import backward_filter, leaf
from markovppl.backward.tree import tree_backward_filter
from markovppl.diagnostics import get_group, group_names
from markovppl.graph import balanced_tree
from markovppl.guided import forward_guide
from markovppl.guided.tree import tree_forward_guide
from markovppl.infer import (PCN, PCN_FIELDS, PCN_RW_FIELDS, RandomWalk, pcn_inference_data, pcn_nuts,
                             pcn_random_walk)
from markovppl.kernels import LinearGaussian, NonlinearGaussian
from markovppl.kernels.initial import GaussianLaw
from oracles_tree import bm_leaf_cov

A1, S2, TAU2, T = 0.9, 0.5, 0.1, 12


def _leaves(y):
    y = jnp.asarray(y)
    return leaf(LinearGaussian(jnp.eye(1, dtype=y.dtype), jnp.zeros(1, y.dtype), TAU2 * jnp.eye(1, dtype=y.dtype)),
                y, jnp.zeros(y.shape, bool))


def _kernel(s2, nonlinear):
    aux = LinearGaussian(jnp.array([[A1]]), jnp.zeros(1), s2 * jnp.eye(1))
    if not nonlinear:
        return aux
    return NonlinearGaussian(lambda x: A1 * x, lambda x: s2 * (1.0 + 0.3 * x[:, None] ** 2), aux)


def guided(s2, z, y, nonlinear=True):
    """Guided path and sum of log-weights; the factor is log h~_0 + sum log w."""
    kernel = _kernel(s2, nonlinear)
    law = GaussianLaw(jnp.zeros(1), jnp.eye(1))
    back = backward_filter(law, kernel, _leaves(y))
    out = forward_guide(law, kernel, back.messages, z)
    return out.path, back.log_evidence, out.log_weights.sum()


def chain_model(y, s2=None, nonlinear=True, double_prior=False, keep_path=True):
    if s2 is None:
        s2 = jnp.exp(numpyro.sample("log_s2", dist.Normal(-0.7, 1.0)))
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([y.shape[0], 1]).to_event(2))
    x, log_h0, log_w = guided(s2, z, y, nonlinear)
    if keep_path:             # (replaying the model for deterministic sites costs one more compilation)
        numpyro.deterministic("x", x)
    numpyro.factor("bffg", log_h0 + log_w)
    if double_prior:          # what a pCN step that keeps the prior ratio in its acceptance would target
        numpyro.factor("prior_again", -0.5 * jnp.sum(z**2))


@pytest.fixture(scope="module")
def chain_data():
    rng = np.random.default_rng(7)
    x, ys = rng.standard_normal(), []
    for t in range(T):
        if t:
            x = A1 * x + np.sqrt(S2 * (1 + 0.3 * x**2)) * rng.standard_normal()
        ys.append(x + np.sqrt(TAU2) * rng.standard_normal())
    return jnp.asarray(np.array(ys)[:, None])


def _chain_loglik_grid(y, log_s2_grid, num_x=601, half_width=10.0):
    """Forward algorithm on a fine state grid (trapezoid rule over the source state; the data reach -6.4,
    so the grid spans +-10: 601 and 1601 points agree to 1e-5 in the log-likelihood)."""
    xs = np.linspace(-half_width, half_width, num_x)
    dx = np.full(num_x, xs[1] - xs[0])
    dx[[0, -1]] *= 0.5
    y = np.asarray(y)[:, 0]
    g = norm.pdf(y[:, None], xs[None, :], np.sqrt(TAU2))                       # (T, X)
    sq = (xs[None, :] - A1 * xs[:, None]) ** 2
    base = 1 + 0.3 * xs[:, None] ** 2
    out = []
    for ls2 in log_s2_grid:
        v = np.exp(ls2) * base
        P = np.exp(-0.5 * sq / v) / np.sqrt(2 * np.pi * v)
        alpha = norm.pdf(xs) * g[0]
        ll = 0.0
        for t in range(1, len(y)):
            c = np.sum(alpha * dx)
            ll += np.log(c)
            alpha = (alpha * dx / c) @ P * g[t]
        out.append(ll + np.log(np.sum(alpha * dx)))
    return np.array(out)


@pytest.fixture(scope="module")
def chain_grid_posterior(chain_data):
    grid = np.linspace(-2.6, 2.2, 65)
    logp = _chain_loglik_grid(chain_data, grid) + norm.logpdf(grid, -0.7, 1.0)
    w = np.exp(logp - logp.max())
    w /= np.trapezoid(w, grid)
    mean = np.trapezoid(w * grid, grid)
    sd = np.sqrt(np.trapezoid(w * (grid - mean) ** 2, grid))
    return mean, sd


def _mc_z(draws, mean):
    draws = np.asarray(draws).reshape(1, -1)
    ess = float(az.ess(draws))
    return (draws.mean() - mean) / (draws.std() / np.sqrt(ess)), ess


# --- mechanics ---------------------------------------------------------------------------------------------

@pytest.mark.smoke
def test_exact_guiding_pcn_mechanics(chain_data):
    """Exact guiding (linear kernel = auxiliary): every proposal is accepted (probability exactly 1), the
    innovations are an AR(1) chain with lag-1 correlation rho (one segment per time step, rho = 0.2 at even
    and 0.9 at odd steps), and their posterior is N(0, 1) (the 6 rho = 0.2 coordinates x 2500 draws: SE of the mean
    ~0.01, of the variance ~0.012, so the +-0.05 bands have power against a 10% variance error)."""
    rho = np.where(np.arange(T) % 2 == 0, 0.2, 0.9)
    kernel = PCN(chain_model, ["z"], rho=rho, segments={"z": 0}, adapt=False)
    mcmc = MCMC(kernel, num_warmup=0, num_samples=2500, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), chain_data, S2, False, extra_fields=("accept_prob", "rho"))
    acc = np.asarray(mcmc.get_extra_fields()["accept_prob"])
    assert acc.shape == (2500, T) and np.all(acc == 1.0)
    z = np.asarray(mcmc.get_samples()["z"])[..., 0]                           # (draws, T)
    for r, cols in ((0.2, slice(0, None, 2)), (0.9, slice(1, None, 2))):
        zz = z[:, cols]
        lag1 = np.mean([np.corrcoef(zz[1:, j], zz[:-1, j])[0, 1] for j in range(zz.shape[1])])
        assert abs(lag1 - r) < 0.1 * r, (r, lag1)
    zz = z[:, ::2]                                                          # rho = 0.2: SE(var) ~ 0.012
    assert abs(zz.mean()) < 0.05 and abs(zz.var() - 1.0) < 0.05, (zz.mean(), zz.var())
    assert np.asarray(mcmc.get_samples()["x"]).shape == (2500, T, 1)          # the deterministic guided path
    lat = get_group(pcn_inference_data(mcmc, "z", latent=["x"], dims={"x": ["time", "state"]}), "latent_posterior")
    assert lat["x"].dims == ("chain", "draw", "time", "state") and lat["z"].dims == ("chain", "draw", "z_dim_0", "z_dim_1")
    # broken variant: keeping the prior ratio in the acceptance targets phi(z)^2, variance 1/2
    bad = MCMC(PCN(chain_model, ["z"], rho=0.5, adapt=False), num_warmup=0, num_samples=600, progress_bar=False)
    bad.run(jax.random.PRNGKey(1), chain_data, S2, False, True, False)
    assert abs(np.asarray(bad.get_samples()["z"]).var() - 1.0) > 0.3


def test_same_theta_and_noise_give_identical_paths(chain_data):
    z = jax.random.normal(jax.random.PRNGKey(3), (T, 1))
    f = jax.jit(guided, static_argnums=3)
    a = f(0.4, z, chain_data, True)
    b = f(0.4, z, chain_data, True)
    c = guided(0.4, z, chain_data, True)
    for u, v in zip(a, b):
        assert np.array_equal(np.asarray(u), np.asarray(v))
    np.testing.assert_allclose(a[0], c[0], rtol=1e-12, atol=1e-12)
    z2 = z.at[3].add(1e-3)
    assert not np.array_equal(np.asarray(f(0.4, z2, chain_data, True)[0]), np.asarray(a[0]))


def test_adaptation_moves_rho_during_warmup_then_freezes():
    """Per-segment adaptation: 4 coordinates with likelihoods of increasing strength, one segment each.
    During warm-up each rho moves (Robbins-Monro on logit rho) until its acceptance is near the target;
    after warm-up rho is bitwise constant; stronger likelihoods need larger rho."""
    prec = jnp.array([10.0, 30.0, 100.0, 300.0])

    def model():
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([4]).to_event(1))
        numpyro.factor("lik", -0.5 * jnp.sum(prec * (z - 0.5) ** 2))

    kernel = PCN(model, ["z"], rho=0.5, target_accept=0.4, segments={"z": 0})
    mcmc = MCMC(kernel, num_warmup=800, num_samples=600, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(2), extra_fields=("accept_prob", "rho"))
    rho = np.asarray(mcmc.get_extra_fields()["rho"])
    acc = np.asarray(mcmc.get_extra_fields()["accept_prob"])
    assert rho.shape == (600, 4) and np.ptp(rho, axis=0).max() == 0.0
    assert np.all(np.diff(rho[0]) > 0), rho[0]
    np.testing.assert_allclose(acc.mean(0), 0.4, atol=0.1)
    # without adaptation rho stays where it was put
    fixed = MCMC(PCN(model, ["z"], rho=0.5, adapt=False), num_warmup=20, num_samples=5, progress_bar=False)
    fixed.run(jax.random.PRNGKey(2), extra_fields=("rho",))
    assert np.all(np.asarray(fixed.get_extra_fields()["rho"]) == 0.5)


def test_torus_moves_for_uniform_innovations():
    """U(0,1) innovations with likelihood 2u per coordinate: the posterior is Beta(2, 1) (mean 2/3)."""
    def model():
        u = numpyro.sample("u", dist.Uniform(0.0, 1.0).expand([4]).to_event(1))
        numpyro.factor("lik", jnp.sum(jnp.log(2.0 * u)))

    mcmc = MCMC(PCN(model, ["u"], rho=0.5, target_accept=0.4), num_warmup=300, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(4))
    u = np.asarray(mcmc.get_samples()["u"])
    assert np.all((u >= 0) & (u < 1))
    for j in range(4):
        z, _ = _mc_z(u[:, j], 2.0 / 3.0)
        assert abs(z) < 4.5


def test_float32_pcn_smoke():
    def model():
        z = numpyro.sample("z", dist.Normal(jnp.float32(0.0), jnp.float32(1.0)).expand([3]).to_event(1))
        numpyro.factor("lik", -0.5 * jnp.sum((z - 1.0) ** 2))

    mcmc = MCMC(PCN(model, ["z"], rho=0.5), num_warmup=20, num_samples=50, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), init_params={"z": jnp.zeros(3, jnp.float32)})
    z = mcmc.get_samples()["z"]
    assert z.dtype == jnp.float32 and bool(jnp.isfinite(z).all())


# --- NumPyro Gibbs recovering known posteriors -------------------------------------------------------------

TREE_S2, TREE_T2 = 0.5, 0.1


def _tree_setup():
    tree = balanced_tree(4)
    n = tree.num_nodes
    leaves = np.asarray(tree.leaves)
    x = np.zeros(n)
    eps = np.asarray(jax.random.normal(jax.random.PRNGKey(202605), (2 * n,)))
    for v in range(1, n):
        x[v] = x[tree.parent[v]] + np.sqrt(TREE_S2 * tree.lengths[v]) * eps[v]
    y = x[leaves] + np.sqrt(TREE_T2) * eps[n:n + len(leaves)]
    return tree, leaves, y


def tree_model(tree, leaves, y, keep_path=False):
    log_s2 = numpyro.sample("log_s2", dist.Normal(0.0, 2.0))
    log_t2 = numpyro.sample("log_t2", dist.Normal(0.0, 2.0))
    n = tree.num_nodes
    z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([n, 1]).to_event(2))
    lengths = jnp.asarray(tree.lengths[1:])
    edges = LinearGaussian(jnp.ones((n - 1, 1, 1)), jnp.zeros((n - 1, 1)),
                           jnp.exp(log_s2) * lengths[:, None, None]).prepared()
    yy = jnp.zeros((n, 1)).at[leaves, 0].set(y)
    missing = jnp.ones((n, 1), bool).at[leaves].set(False)
    g = leaf(LinearGaussian(jnp.eye(1), jnp.zeros(1), jnp.exp(log_t2) * jnp.eye(1)), yy, missing)
    root = GaussianLaw(jnp.zeros(1), jnp.zeros((1, 1)))
    back = tree_backward_filter(tree, edges, g, root)
    x, lw = tree_forward_guide(tree, edges, back.messages, z, root)
    if keep_path:
        numpyro.deterministic("x", x)
    numpyro.factor("bffg", back.log_evidence + lw.sum())


def _tree_grid_means(tree, leaves, y):
    """Posterior means of s2 and t2 on a (log s2, log t2) grid from the dense Brownian-motion evidence."""
    K = bm_leaf_cov(tree.parent, tree.lengths, leaves, np.eye(1), np.zeros((1, 1)))
    a = np.linspace(-4.0, 2.5, 261)
    b = np.linspace(-7.0, 1.5, 341)
    lam, U = np.linalg.eigh(K)                       # s2 K + t2 I = U (s2 lam + t2) U'
    r2 = (U.T @ y) ** 2
    var = np.exp(a)[:, None, None] * lam + np.exp(b)[None, :, None]
    loglik = -0.5 * np.sum(np.log(2 * np.pi * var) + r2 / var, -1)
    spot = multivariate_normal(np.zeros(len(y)), np.exp(a[100]) * K + np.exp(b[200]) * np.eye(len(y))).logpdf(y)
    assert abs(loglik[100, 200] - spot) < 1e-9
    logp = loglik + norm.logpdf(a, 0, 2)[:, None] + norm.logpdf(b, 0, 2)[None, :]
    w = np.exp(logp - logp.max())
    w /= w.sum()
    return np.sum(w * np.exp(a)[:, None]), np.sum(w * np.exp(b)[None, :])


def _run_tree(num_warmup, num_samples):
    tree, leaves, y = _tree_setup()
    grid_s2, grid_t2 = _tree_grid_means(tree, leaves, y)
    mcmc = MCMC(pcn_nuts(tree_model, ["z"], rho=0.5), num_warmup=num_warmup, num_samples=num_samples,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(1), tree, leaves, jnp.asarray(y), extra_fields=PCN_FIELDS)
    s = mcmc.get_samples()
    assert np.all(np.asarray(mcmc.get_extra_fields()["block_states.0.accept_prob"]) == 1.0)
    s2, t2 = np.exp(np.asarray(s["log_s2"])), np.exp(np.asarray(s["log_t2"]))
    return mcmc, (s2, grid_s2), (t2, grid_t2)


def test_tree_nuts_pcn_recovers_grid_posterior():
    """§5 item 15, CI size: depth-4 binary tree, unit edges, s2 = .5, t2 = .1, N(0, 2^2) priors on the logs.
    NUTS on (log s2, log t2) + pCN on the 31 innovations (exact guiding: pCN acceptance exactly 1). With
    1500 draws (ESS ~1000) the MC SE of the posterior mean is ~1.3% for s2 and ~4% for t2 (its posterior
    is wide): s2 must be within 5% of the grid posterior mean of the dense MVN evidence, both within
    4.5 MC SE. The full-size run (slow) checks 5% for both."""
    mcmc, (s2, grid_s2), (t2, grid_t2) = _run_tree(300, 1500)
    assert abs(s2.mean() / grid_s2 - 1) < 0.05, (s2.mean(), grid_s2)
    for draws, grid_mean in ((s2, grid_s2), (t2, grid_t2)):
        z, ess = _mc_z(draws, grid_mean)
        assert abs(z) < 4.5, (draws.mean(), grid_mean, ess)
    idata = pcn_inference_data(mcmc, ["z"], dims={"z": ["node", "state"]})
    assert {"posterior", "sample_stats", "latent_posterior"} <= set(group_names(idata))
    assert get_group(idata, "latent_posterior")["z"].dims == ("chain", "draw", "node", "state")
    stats = get_group(idata, "sample_stats")
    assert stats["pcn_accept_prob"].dims == ("chain", "draw", "segment")
    assert {"pcn_rho", "diverging", "acceptance_rate"} <= set(stats.data_vars)
    assert set(get_group(idata, "posterior").data_vars) == {"log_s2", "log_t2"}


@pytest.mark.slow
def test_tree_nuts_pcn_full_size():
    """Full size (recorded in docs/pcn.md): 1000 warm-up + 16000 draws; both posterior means within 5%."""
    _, (s2, grid_s2), (t2, grid_t2) = _run_tree(1000, 16000)
    print(f"\ntree: s2 {s2.mean():.4f} (grid {grid_s2:.4f}, ESS {_mc_z(s2, grid_s2)[1]:.0f}); "
          f"t2 {t2.mean():.4f} (grid {grid_t2:.4f}, ESS {_mc_z(t2, grid_t2)[1]:.0f})")
    for draws, grid_mean in ((s2, grid_s2), (t2, grid_t2)):
        assert abs(draws.mean() / grid_mean - 1) < 0.05, (draws.mean(), grid_mean)


def test_nonlinear_variance_chain_nuts_pcn_matches_grid(chain_data, chain_grid_posterior):
    """§5 item 15, nonlinear-covariance variant Q(x) = s2 (1 + 0.3 x^2) with the auxiliary N(0.9 x, s2):
    the weights are far from constant (std of sum log w > 0.1), and NUTS on log s2 + per-step pCN recovers
    the fine-grid forward-algorithm posterior mean of log s2 within 4 Monte Carlo SE (ESS-based)."""
    zs = jax.random.normal(jax.random.PRNGKey(8), (200, T, 1))
    lw = jax.vmap(lambda z: guided(S2, z, chain_data)[2])(zs)
    assert float(jnp.std(lw)) > 0.1
    mean, sd = chain_grid_posterior
    mcmc = MCMC(pcn_nuts(chain_model, ["z"], rho=0.8, segments={"z": 0}), num_warmup=250, num_samples=1000,
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(5), chain_data, None, True, False, False, extra_fields=PCN_FIELDS)
    draws = np.asarray(mcmc.get_samples()["log_s2"])
    z, ess = _mc_z(draws, mean)
    assert ess > 100 and abs(z) < 4.0, (draws.mean(), mean, ess)
    assert abs(draws.std() / sd - 1) < 0.25
    acc = np.asarray(mcmc.get_extra_fields()["block_states.0.accept_prob"])
    assert acc.shape == (1000, T) and 0.05 < acc.mean() < 1.0
    rho = np.asarray(mcmc.get_extra_fields()["block_states.0.rho"])
    assert np.ptp(rho, axis=0).max() == 0.0


def test_random_walk_block_matches_grid(chain_data, chain_grid_posterior):
    """§4.4 (c): the same posterior with the gradient-free random-walk block on log s2 (scale adapted in
    warm-up, frozen after) + pCN: within 4 Monte Carlo SE of the grid posterior mean."""
    mean, _ = chain_grid_posterior
    mcmc = MCMC(pcn_random_walk(chain_model, ["z"], rho=0.8, segments={"z": 0}), num_warmup=400,
                num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(6), chain_data, None, True, False, False, extra_fields=PCN_RW_FIELDS)
    draws = np.asarray(mcmc.get_samples()["log_s2"])
    z, ess = _mc_z(draws, mean)
    assert ess > 100 and abs(z) < 4.0, (draws.mean(), mean, ess)
    extra = mcmc.get_extra_fields()
    scale = np.asarray(extra["block_states.1.scale"])
    assert np.ptp(scale) == 0.0 and scale[0] != 0.5
    assert 0.2 < np.asarray(extra["block_states.1.accept_prob"]).mean() < 0.7
    stats = get_group(pcn_inference_data(mcmc, "z"), "sample_stats")
    assert {"rw_scale", "rw_accept_prob", "pcn_accept_prob", "pcn_rho"} <= set(stats.data_vars)


def test_random_walk_alone_matches_grid():
    """RandomWalk alone on a conjugate model: y_i ~ N(mu, 1), mu ~ N(0, 1): posterior N(sum y / (n+1), 1/(n+1))."""
    y = jnp.array([0.3, 1.2, 0.8, -0.1, 0.9])

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    mcmc = MCMC(RandomWalk(model), num_warmup=500, num_samples=4000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), y)
    z, _ = _mc_z(mcmc.get_samples()["mu"], float(y.sum()) / 6.0)
    assert abs(z) < 4.5


# --- bad input ---------------------------------------------------------------------------------------------

def test_bad_input_raises(chain_data):
    def bad_prior():
        numpyro.sample("z", dist.Normal(0.0, 2.0).expand([3]).to_event(1))

    with pytest.raises(ValueError, match="standard Normal"):
        PCN(bad_prior, ["z"]).init(jax.random.PRNGKey(0), 1, None, (), {})
    with pytest.raises(ValueError, match="rho"):
        PCN(chain_model, ["z"], rho=1.0)
    with pytest.raises(ValueError, match="target_accept"):
        PCN(chain_model, ["z"], target_accept=1.5)
    with pytest.raises(ValueError, match="segments"):
        PCN(chain_model, ["z"], segments={"w": 0})
    with pytest.raises(ValueError, match="other latent"):
        PCN(chain_model, ["z"]).init(jax.random.PRNGKey(0), 1, None, (chain_data,), {})
    with pytest.raises(ValueError, match="not latent"):
        PCN(chain_model, ["q"]).init(jax.random.PRNGKey(0), 1, None, (chain_data, S2), {})
    with pytest.raises(ValueError, match="axis"):
        PCN(chain_model, ["z"], segments={"z": 5}).init(jax.random.PRNGKey(0), 1, None, (chain_data, S2), {})
    with pytest.raises(ValueError, match="scale"):
        RandomWalk(chain_model, scale=-1.0)
    with pytest.raises(ValueError, match="no sites"):
        pcn_inference_data(type("R", (), {"get_samples": lambda self, group_by_chain: {"a": np.zeros((1, 2))},
                                          "get_extra_fields": lambda self, group_by_chain: {}})(), ["z"])


@pytest.mark.slow
def test_pcn_on_a_guided_diffusion():
    """pCN on the innovations of a guided OU diffusion (markovppl.families.sde): with the true drift equal to
    the auxiliary every move is accepted; with a mismatched drift the weights vary and some moves are rejected."""
    from markovppl.families.sde import DiscretelyObservedSDE
    from markovppl.kernels.diffusion import LinearSDE

    def sde_model(y, theta):
        sde = DiscretelyObservedSDE(lambda t, x: -theta * x, jnp.eye(1), LinearSDE(-jnp.eye(1), jnp.zeros(1), jnp.eye(1)),
                                    jnp.array([0.5, 1.0]), jnp.eye(1), jnp.array([[0.1]]), x0=jnp.ones(1),
                                    num_steps=10)
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([sde.noise_size]).to_event(1))
        numpyro.factor("bffg", sde.guided_log_likelihood(y, z))

    y = jnp.array([[0.4], [-0.3]])
    for theta, exact in ((1.0, True), (3.0, False)):
        mcmc = MCMC(PCN(sde_model, ["z"], rho=0.3, adapt=False), num_warmup=0, num_samples=300, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), y, theta, extra_fields=("accept_prob",))
        acc = np.asarray(mcmc.get_extra_fields()["accept_prob"])
        if exact:
            assert np.all(acc == 1.0)
        else:
            assert 0.05 < acc.mean() < 0.99, acc.mean()
