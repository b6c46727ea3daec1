"""NumPyro integration: the distribution contract, NUTS against quadrature posteriors, Predictive, ArviZ."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.diagnostics import effective_sample_size
from numpyro.infer import MCMC, NUTS, Predictive
from scipy import stats

import markovppl as mp
import oracles

P2 = np.array([[0.9, 0.1], [0.2, 0.8]])
PI2 = np.array([0.5, 0.5])


def hmm(mu, T=None, **kw):
    return mp.HMM(PI2, P2, dist.Normal(jnp.stack([-mu, mu]), 1.0), num_steps=T, **kw)


def test_distribution_contract_shapes_pytree_expand_mask_to_event():
    d = hmm(jnp.asarray(1.0), 6)
    assert d.batch_shape == () and d.event_shape == (6,)
    assert mp.HMM.infer_shapes((2,), (2, 2), (2,), (), 6) == (d.batch_shape, d.event_shape)
    y = d.sample(jax.random.PRNGKey(0))
    leaves, treedef = jax.tree.flatten(d)
    again = jax.tree.unflatten(treedef, leaves)
    assert float(again.log_prob(y)) == float(d.log_prob(y))
    e = d.expand((3,))
    assert e.batch_shape == (3,) and e.sample(jax.random.PRNGKey(1)).shape == (3, 6)
    np.testing.assert_allclose(e.log_prob(y), np.full(3, float(d.log_prob(y))))
    masked = d.mask(False)
    assert float(masked.log_prob(y)) == 0.0
    ind = e.to_event(1)
    assert ind.event_shape == (3, 6) and abs(float(ind.log_prob(jnp.stack([y] * 3))) - 3 * float(d.log_prob(y))) < 1e-9
    lg = mp.LinearGaussianSSM(jnp.zeros(2), jnp.eye(2), jnp.eye(2), jnp.eye(2), jnp.ones((1, 2)), jnp.eye(1), num_steps=4)
    assert mp.LinearGaussianSSM.infer_shapes((2,), (2, 2), (2, 2), (2, 2), (1, 2), (1, 1), num_steps=4) == (lg.batch_shape, lg.event_shape)
    # constructing inside vmap
    mus = jnp.array([0.5, 1.0, 2.0])
    np.testing.assert_allclose(jax.vmap(lambda m: hmm(m, 6).log_prob(y))(mus), [float(hmm(m, 6).log_prob(y)) for m in mus], atol=1e-10)


def _nuts(model, key, *args, num_warmup=500, num_samples=2000, **kw):
    mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False, **kw)
    mcmc.run(key, *args)
    return mcmc


def matches_quadrature(draws, mean, sd):
    """Posterior mean within 4 Monte Carlo standard errors and sd within 10% of the quadrature values."""
    draws = np.asarray(draws)
    ess = float(effective_sample_size(draws[None]))
    mcse = draws.std() / np.sqrt(ess)
    return abs(draws.mean() - mean) < 4 * mcse and abs(draws.std() / sd - 1) < 0.10


def test_nuts_hmm_matches_quadrature_and_constant_likelihood_fails():
    rng = np.random.default_rng(0)
    T = 100
    states = [0]
    for _ in range(T - 1):
        states.append(rng.choice(2, p=P2[states[-1]]))
    y = rng.normal(np.where(np.array(states) == 0, -1.0, 1.0), 1.0)

    def model(y):
        mu = numpyro.sample("mu", dist.LogNormal(0.0, 0.5))  # positive: the two states keep their labels
        numpyro.sample("y", hmm(mu), obs=y)

    grid = np.linspace(0.3, 1.8, 3001)
    loglik = lambda m: oracles.hmm_forward(PI2, P2, stats.norm.logpdf(y[:, None], [-m, m], 1.0))["log_evidence"]
    mean, sd = oracles.grid_posterior(np.vectorize(loglik), lambda m: stats.lognorm.logpdf(m, 0.5), grid)
    draws = _nuts(model, jax.random.PRNGKey(1), y).get_samples()["mu"]
    assert matches_quadrature(draws, mean, sd)

    def constant(y):
        numpyro.sample("mu", dist.LogNormal(0.0, 0.5))
        numpyro.factor("y", 0.0)

    assert not matches_quadrature(_nuts(constant, jax.random.PRNGKey(1), y).get_samples()["mu"], mean, sd)


def test_nuts_lgssm_matches_quadrature():
    rng = np.random.default_rng(1)
    T, q, r_true = 80, 0.5, 1.5
    x = np.cumsum(rng.normal(0, np.sqrt(q), T))
    y = (x + rng.normal(0, np.sqrt(r_true), T))[:, None]

    def model(y):
        log_r = numpyro.sample("log_r", dist.Normal(0.0, 1.0))
        ssm = mp.LinearGaussianSSM(jnp.zeros(1), jnp.eye(1) * 4.0, jnp.eye(1), q * jnp.eye(1), jnp.eye(1),
                                   jnp.exp(log_r) * jnp.eye(1))
        numpyro.sample("y", ssm, obs=y)

    one = np.ones((1, 1))
    loglik = lambda lr: oracles.kalman_filter(np.zeros(1), 4.0 * one, one, np.zeros(1), q * one, one, np.zeros(1),
                                              np.exp(lr) * one, y)["log_evidence"]
    grid = np.linspace(-1.5, 2.0, 1401)
    mean, sd = oracles.grid_posterior(np.vectorize(loglik), lambda lr: stats.norm.logpdf(lr, 0.0, 1.0), grid)
    assert matches_quadrature(_nuts(model, jax.random.PRNGKey(2), y).get_samples()["log_r"], mean, sd)


@pytest.mark.smoke
def test_vectorized_chains_predictive_and_inference_data(tmp_path):
    rng = np.random.default_rng(2)
    T = 30
    y = jnp.asarray(rng.normal(size=T))
    y = y.at[5].set(jnp.nan)

    def model(y=None, T=None):
        mu = numpyro.sample("mu", dist.Normal(1.0, 1.0))
        numpyro.sample("y", hmm(mu, T), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=50, num_samples=40, num_chains=2, chain_method="vectorized", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(3), y)
    pred = Predictive(model, mcmc.get_samples())(jax.random.PRNGKey(4), T=T)
    assert pred["y"].shape == (80, T)
    idata = mp.to_inference_data(mcmc, coords={"time": np.arange(1900, 1900 + T)})
    groups = set(mp.diagnostics.group_names(idata))
    assert {"posterior", "latent_posterior", "log_likelihood", "posterior_predictive", "observed_data", "sample_stats"} <= groups
    post = mp.diagnostics.get_group(idata, "posterior")
    assert set(post.data_vars) == {"mu"}
    latent = mp.diagnostics.get_group(idata, "latent_posterior")["y"]
    assert latent.dims == ("chain", "draw", "time") and latent.shape == (2, 40, T)
    assert set(np.unique(latent.values)) <= {0, 1}
    ll = mp.diagnostics.get_group(idata, "log_likelihood")["y"]
    assert ll.shape == (2, 40, T - 1) and 1905 not in ll["time"].values  # the missing step is left out
    # the pointwise terms sum to the exact log-likelihood at each draw
    mu = np.asarray(mcmc.get_samples(group_by_chain=True)["mu"])
    exact = np.vectorize(lambda m: float(hmm(jnp.asarray(m), T).log_prob(y)))(mu[0, :3])
    np.testing.assert_allclose(ll.values[0, :3].sum(-1), exact, rtol=1e-5)
    assert mp.diagnostics.get_group(idata, "posterior_predictive")["y"].shape == (2, 40, T)
    path = mp.diagnostics.to_netcdf(idata, tmp_path / "idata.nc")
    back = mp.diagnostics.from_netcdf(path)
    np.testing.assert_array_equal(mp.diagnostics.get_group(back, "latent_posterior")["y"].values, latent.values)
    np.testing.assert_array_equal(mp.diagnostics.get_group(back, "posterior")["mu"].values, post["mu"].values)
