"""Particle Gibbs in NumPyro: NUTS on the parameters + conditional SMC on the latent path, checked
against the quadrature posterior from the exact Kalman likelihood and the RTS smoother; a kernel whose
reference is not the current path must fail the same check; ArviZ layout of the output."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS, HMCGibbs

from markovppl import particles as pt
from markovppl.diagnostics import get_group
from markovppl.infer import (PARTICLE_GIBBS_FIELDS, ParticleGibbs, particle_gibbs_fn,
                             particle_gibbs_inference_data, particle_gibbs_nuts)
from markovppl.infer import particle_gibbs as pg_module
from oracles import grid_posterior, kalman_filter, rts_smoother

SX, SY, RHO_TRUE, T = 1.0, 0.5, 0.8, 30


def _ssm(rho):
    return pt.StateSpaceModel(dist.Normal(0.0, 1.0), lambda t, x: dist.Normal(rho * x, SX),
                              lambda t, x: dist.Normal(x, SY))


def model(y):
    rho = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
    ssm = _ssm(rho)
    x = numpyro.sample("x", ssm.path_prior(y.shape[0]))
    numpyro.sample("y", ssm.observation_law(x), obs=y)


def fixed_model(y, rho=RHO_TRUE):
    ssm = _ssm(rho)
    x = numpyro.sample("x", ssm.path_prior(y.shape[0]))
    numpyro.sample("y", ssm.observation_law(x), obs=y)


def _kalman_args(rho):
    return (np.zeros(1), np.eye(1), rho * np.eye(1), np.zeros(1), SX**2 * np.eye(1), np.eye(1), np.zeros(1),
            SY**2 * np.eye(1))


@pytest.fixture(scope="module")
def data_and_oracle():
    _, y = _ssm(RHO_TRUE).sample(jax.random.PRNGKey(42), T)
    y = np.asarray(y)
    loglik = np.vectorize(lambda r: kalman_filter(*_kalman_args(r), y[:, None])["log_evidence"])
    mean, sd = grid_posterior(loglik, lambda r: np.zeros_like(r), np.linspace(-0.999, 0.999, 801))
    return jnp.asarray(y), mean, sd


def _z(draws, mean):
    draws = np.asarray(draws).reshape(1, -1)
    ess = float(az.ess(draws))
    return (draws.mean() - mean) / (draws.std() / np.sqrt(ess)), ess


def _run_nuts_csmc(y, seed=0, num_samples=2000):
    mcmc = MCMC(particle_gibbs_nuts(model, "x", 16), num_warmup=500, num_samples=num_samples, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), y, extra_fields=PARTICLE_GIBBS_FIELDS)
    return mcmc


def test_nuts_plus_csmc_matches_the_quadrature_posterior_and_writes_arviz_groups(data_and_oracle, monkeypatch):
    y, mean, sd = data_and_oracle
    mcmc = _run_nuts_csmc(y)
    rho = mcmc.get_samples()["rho"]
    z, ess = _z(rho, mean)
    assert ess > 150, ess
    assert abs(z) < 4.0, (z, float(rho.mean()), mean)
    assert abs(float(rho.std()) / sd - 1) < 0.15, (float(rho.std()), sd)

    idata = particle_gibbs_inference_data(mcmc, "x")
    assert list(get_group(idata, "posterior").data_vars) == ["rho"]
    latent = get_group(idata, "latent_posterior")["x"]
    assert latent.dims == ("chain", "draw", "time") and latent.shape == (1, 2000, T)
    stats = get_group(idata, "sample_stats")
    assert stats["particle_ess"].dims == ("chain", "draw", "time")
    ess_t = np.asarray(stats["particle_ess"])
    assert np.all((ess_t >= 1 - 1e-9) & (ess_t <= 16 + 1e-9))
    renewal = np.asarray(stats["renewal_rate"])
    assert 0.3 < renewal.mean() <= 1.0                       # backward sampling renews most of the path
    assert np.all(np.isfinite(np.asarray(stats["csmc_log_evidence"])))
    assert {"diverging", "acceptance_rate"} <= set(stats.data_vars)

    # a broken kernel: the path block does not see the current parameters (the conditioning values
    # are dropped, so each sweep runs at a parameter drawn afresh from the prior)
    real_trace = pg_module._trace
    monkeypatch.setattr(pg_module, "_trace", lambda m, key, site, path, args, kwargs: real_trace(
        m, key, site, path, args, {k: v for k, v in (kwargs or {}).items() if k != "_gibbs_sites"}))
    monkeypatch.setattr(ParticleGibbs, "_check", lambda self, tr: None)
    rho_broken = _run_nuts_csmc(y, num_samples=1000).get_samples()["rho"]
    z_broken, _ = _z(rho_broken, mean)
    assert abs(z_broken) > 4.5, z_broken


def test_hmcgibbs_with_the_csmc_gibbs_fn_matches_the_quadrature_posterior(data_and_oracle):
    y, mean, sd = data_and_oracle
    kernel = HMCGibbs(NUTS(model), particle_gibbs_fn(model, "x", 16, model_args=(y,)), gibbs_sites=["x"])
    mcmc = MCMC(kernel, num_warmup=500, num_samples=1500, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(1), y)
    z, ess = _z(mcmc.get_samples()["rho"], mean)
    assert ess > 100 and abs(z) < 4.0, (z, ess)


@pytest.mark.smoke
def test_standalone_kernel_gives_rts_marginals_at_fixed_parameters(data_and_oracle):
    y, _, _ = data_and_oracle
    y = y[:12]
    mcmc = MCMC(ParticleGibbs(fixed_model, "x", 8), num_warmup=50, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(2), y, extra_fields=("ess", "fraction_changed"))
    x = np.asarray(mcmc.get_samples()["x"])
    rts = rts_smoother(*_kalman_args(RHO_TRUE), np.asarray(y)[:, None])
    batches = x.reshape(20, -1, x.shape[1]).mean(1)             # batch-means MCSE (any ArviZ version)
    z = (x.mean(0) - rts["smoothed_means"][:, 0]) / (batches.std(0, ddof=1) / np.sqrt(20))
    assert np.max(np.abs(z)) < 4.5, z
    ratio = x.var(0) / rts["smoothed_covs"][:, 0, 0]
    assert 0.85 < np.median(ratio) < 1.15, ratio
    assert mcmc.get_extra_fields()["ess"].shape == (2000, 12)


def test_bad_models_raise_clear_errors(data_and_oracle):
    y, _, _ = data_and_oracle

    def plain(y):
        x = numpyro.sample("x", dist.Normal(0.0, 1.0).expand([y.shape[0]]).to_event(1))
        numpyro.sample("y", dist.Normal(x, 1.0).to_event(1), obs=y)

    def unobserved(y):
        numpyro.sample("x", _ssm(0.5).path_prior(y.shape[0]))

    for bad, match in [(plain, "path_prior"), (unobserved, "exactly one"), (model, "other latent sites")]:
        with pytest.raises(ValueError, match=match):
            MCMC(ParticleGibbs(bad, "x", 8), num_warmup=1, num_samples=1, progress_bar=False).run(jax.random.PRNGKey(0), y)
    with pytest.raises(ValueError, match="num_particles"):
        ParticleGibbs(model, "x", 1)
    with pytest.raises(ValueError, match="num_particles"):
        particle_gibbs_fn(model, "x", 1)


@pytest.mark.slow
def test_full_size_nuts_csmc_and_pmmh_match_the_quadrature_posterior():
    """Full size: T = 100, 2 chains x 4000 draws of NUTS + CSMC (N = 32) and of PMMH (N = 200); the
    posterior mean of rho within 4 MCSE of the quadrature posterior and its sd within 10%."""
    from markovppl.infer import particle_factor, pmmh

    _, y = _ssm(RHO_TRUE).sample(jax.random.PRNGKey(7), 100)
    y_np = np.asarray(y)
    loglik = np.vectorize(lambda r: kalman_filter(*_kalman_args(r), y_np[:, None])["log_evidence"])
    mean, sd = grid_posterior(loglik, lambda r: np.zeros_like(r), np.linspace(-0.999, 0.999, 2001))
    mcmc = MCMC(particle_gibbs_nuts(model, "x", 32), num_warmup=1000, num_samples=4000, num_chains=2,
                chain_method="sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), y)
    rho = np.asarray(mcmc.get_samples(group_by_chain=True)["rho"])
    z = (rho.mean() - mean) / (rho.std() / np.sqrt(float(az.ess(rho))))
    print(f"\nNUTS+CSMC: mean {rho.mean():.4f} (quadrature {mean:.4f}), sd ratio {rho.std() / sd:.3f}, "
          f"ESS {float(az.ess(rho)):.0f}, z {z:.2f}")
    assert abs(z) < 4.0 and abs(rho.std() / sd - 1) < 0.10

    def pm_model(y):
        r = numpyro.sample("rho", dist.Uniform(-1.0, 1.0))
        particle_factor("loglik", _ssm(r).bootstrap(y), y.shape[0], 200)

    res = pmmh(jax.random.PRNGKey(1), pm_model, 4000, num_warmup=1000, num_chains=2, model_args=(y,))
    rho = np.asarray(res.samples["rho"])
    z = (rho.mean() - mean) / (rho.std() / np.sqrt(float(az.ess(rho))))
    print(f"PMMH: mean {rho.mean():.4f}, sd ratio {rho.std() / sd:.3f}, ESS {float(az.ess(rho)):.0f}, z {z:.2f}, "
          f"acceptance {np.asarray(res.accept_rate).round(2).tolist()}")
    assert abs(z) < 4.0 and abs(rho.std() / sd - 1) < 0.10
