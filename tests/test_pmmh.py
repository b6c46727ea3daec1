"""Particle marginal Metropolis-Hastings: the posterior of one LGSSM parameter against the quadrature
posterior from the exact Kalman likelihood, and a broken variant (no log-Jacobian) that must fail."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

from markovppl import particles as pt
from markovppl.infer import particle_factor, pmmh
from markovppl.infer import particle_marginal as pmmh_module
from oracles import grid_posterior, kalman_filter

SX, SY, RHO_TRUE, T = 1.0, 0.5, 0.8, 30


def _ssm(rho):
    return pt.StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, SX),
                              lambda t, x: dist.Normal(x, SY))


def model(y, num_particles=64):
    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    numpyro.deterministic("rho_sq", rho**2)
    particle_factor("loglik", _ssm(rho).bootstrap(y), y.shape[0], num_particles)


@pytest.fixture(scope="module")
def data_and_oracle():
    _, y = _ssm(RHO_TRUE).sample(jax.random.PRNGKey(42), T)
    y = np.asarray(y)

    def loglik(rho):
        return kalman_filter(np.zeros(1), np.eye(1), rho * np.eye(1), np.zeros(1), SX**2 * np.eye(1), np.eye(1),
                             np.zeros(1), SY**2 * np.eye(1), y[:, None])["log_evidence"]

    grid = np.linspace(-0.999, 0.999, 801)
    mean, sd = grid_posterior(np.vectorize(loglik), lambda r: np.zeros_like(r), grid)
    return jnp.asarray(y), mean, sd


def _check(res, mean, sd):
    draws = np.asarray(res.samples["rho"])
    ess = float(az.ess(draws))
    mcse = draws.std() / np.sqrt(ess)
    z = (draws.mean() - mean) / mcse
    return z, draws.std() / sd, ess


def test_pmmh_matches_the_quadrature_posterior_and_a_jacobian_free_variant_fails(data_and_oracle, monkeypatch):
    y, mean, sd = data_and_oracle
    run = lambda: pmmh(jax.random.PRNGKey(1), model, 1500, num_warmup=400, num_chains=2, model_args=(y,))
    res = run()
    z, sd_ratio, ess = _check(res, mean, sd)
    assert ess > 200, ess
    assert abs(z) < 4.0, (z, np.asarray(res.samples["rho"]).mean(), mean)
    assert abs(sd_ratio - 1) < 0.15, sd_ratio
    assert np.all((0.1 < np.asarray(res.accept_rate)) & (np.asarray(res.accept_rate) < 0.6)), res.accept_rate
    np.testing.assert_allclose(res.samples["rho_sq"], res.samples["rho"] ** 2)        # deterministic sites
    assert res.log_density.shape == res.accepted.shape == (2, 1500)

    def no_jacobian(model_, args, kwargs, unravel, key, u):   # MH on u with the density of theta: wrong
        seeded = numpyro.handlers.seed(model_, key)
        params = numpyro.infer.util.constrain_fn(seeded, args, kwargs, unravel(u))
        return numpyro.infer.util.log_density(numpyro.handlers.seed(model_, key), args, kwargs, params)[0]

    monkeypatch.setattr(pmmh_module, "_log_target", no_jacobian)
    z_broken, _, _ = _check(run(), mean, sd)
    assert abs(z_broken) > 4.5, z_broken


@pytest.mark.smoke
def test_pmmh_chains_thinning_and_arviz(data_and_oracle):
    """Two chains from one key are different, thinning keeps every k-th iteration, and the result
    converts to ArviZ (determinism of the particle filter under a fixed key: test_state_space.py)."""
    y, _, _ = data_and_oracle
    a = pmmh(jax.random.PRNGKey(3), model, 20, num_warmup=10, num_chains=2, thinning=2, model_args=(y[:10], 16))
    assert a.samples["rho"].shape == (2, 20) and a.accept_rate.shape == (2,)
    assert not np.array_equal(np.asarray(a.samples["rho"][0]), np.asarray(a.samples["rho"][1]))
    from markovppl.diagnostics import get_group
    idata = a.to_inference_data()
    assert get_group(idata, "posterior")["rho"].shape == (2, 20)
    assert float(get_group(idata, "sample_stats")["accepted"].mean()) == pytest.approx(float(a.accepted.mean()))


def test_pmmh_bad_input():
    y = jnp.zeros(5)
    with pytest.raises(ValueError, match="num_samples"):
        pmmh(jax.random.PRNGKey(0), model, 0, model_args=(y,))
    with pytest.raises(ValueError, match="step_size"):
        pmmh(jax.random.PRNGKey(0), model, 5, step_size=0.0, model_args=(y,))
    with pytest.raises(ValueError, match="target_accept"):
        pmmh(jax.random.PRNGKey(0), model, 5, target_accept=1.5, model_args=(y,))
    with pytest.raises(ValueError, match="proposal_scale"):
        pmmh(jax.random.PRNGKey(0), model, 5, num_warmup=0, proposal_scale=[1.0, 2.0], model_args=(y,))
    with pytest.raises(ValueError, match="no latent"):
        pmmh(jax.random.PRNGKey(0), lambda: numpyro.factor("f", 0.0), 5)
    fixed = lambda y: particle_factor("loglik", _ssm(0.5).bootstrap(y), 5, 8)
    with pytest.raises(ValueError, match="seed"):
        numpyro.handlers.trace(fixed).get_trace(y)
