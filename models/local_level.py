"""Local level model (random walk plus noise) with a diffuse start for the annual Nile flow (1871-1970).

Run it with ``markovppl fit local_level``; fit your own series with
``--data my.csv --columns flow --time-column year`` (empty cells are missing years).

Model (Durbin & Koopman 2012, ch. 2):
$y_t = \\mu_t + \\varepsilon_t$, $\\varepsilon_t \\sim N(0, \\sigma^2_\\varepsilon)$;
$\\mu_{t+1} = \\mu_t + \\eta_t$, $\\eta_t \\sim N(0, \\sigma^2_\\eta)$; $\\mu_0$ diffuse
(``mp.LinearGaussianSSM(..., diffuse=True)``: variance $10^7$, centred on the mean of the observed
values so that the large-variance approximation is accurate in float32 too). Half-normal priors on the
two standard deviations, scaled to the data: $\\sigma_\\varepsilon \\sim HN(250)$, $\\sigma_\\eta \\sim HN(100)$
(10^8 m^3 per year). The maximum-likelihood estimates are $\\sigma^2_\\varepsilon = 15099$ and
$\\sigma^2_\\eta = 1469.1$; the likelihood is flat in $\\sigma^2_\\eta$, so its posterior is wide and
right-skewed. The level path is marginalised exactly and drawn afterwards (``latent_posterior``).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import diagnostics
from markovppl.diagnostics.plots import plot_smoothing_band

DATA_COLUMNS = ["flow"]
TIME_COLUMN = "year"
VAR_NAMES = ["sigma2_eps", "sigma2_eta"]
DIFFUSE_SCALE = 1e7


def _ssm(sigma_eps, sigma_eta, centre, num_steps=None):
    one = jnp.ones((1, 1))
    return mp.LinearGaussianSSM(jnp.reshape(centre, (1,)), None, one, sigma_eta**2 * one, one, sigma_eps**2 * one,
                                diffuse=True, diffuse_scale=DIFFUSE_SCALE, num_steps=num_steps)


def _centre(y):
    return 0.0 if y is None else jnp.nanmean(y)


def model(y=None, num_steps=None):
    sigma_eps = numpyro.sample("sigma_eps", dist.HalfNormal(250.0))
    sigma_eta = numpyro.sample("sigma_eta", dist.HalfNormal(100.0))
    numpyro.deterministic("sigma2_eps", sigma_eps**2)
    numpyro.deterministic("sigma2_eta", sigma_eta**2)
    obs = None if y is None else jnp.reshape(y, (-1, 1))  # the SSM observes (T, 1) vectors
    numpyro.sample("y", _ssm(sigma_eps, sigma_eta, _centre(y), num_steps if y is None else None), obs=obs)


def load_data():
    data = mp.datasets.load_nile()
    return {"y": data.values, "time": data.time, "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # flow with the posterior mean of the smoothed level (averaged over parameter draws) and a 90% band
    # from the exact posterior level paths, one per draw, so the band includes parameter uncertainty
    post = diagnostics.get_group(idata, "posterior")
    sig_eps = np.asarray(post["sigma_eps"]).reshape(-1)
    sig_eta = np.asarray(post["sigma_eta"]).reshape(-1)
    y = jnp.asarray(data["y"])
    obs, centre = jnp.reshape(y, (-1, 1)), jnp.nanmean(y)
    smooth = jax.jit(jax.vmap(lambda a, b: _ssm(a, b, centre).smooth(obs).smoothed_means[:, 0]))
    mean = np.asarray(smooth(jnp.asarray(sig_eps, y.dtype), jnp.asarray(sig_eta, y.dtype))).mean(0)
    latent = np.asarray(diagnostics.get_group(idata, "latent_posterior")["y"])
    draws = latent.reshape((-1,) + latent.shape[2:])[..., 0]
    path = os.path.join(out_dir, "smoothed_level.png")
    plot_smoothing_band(data["time"], data["y"], draws, path, mean=mean, ylabel="flow (10^8 m^3 per year)",
                        label="level", title="Nile flow and the posterior level (local level model)")
    return [path]
