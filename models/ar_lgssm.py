"""Latent AR(1) plus noise (a linear-Gaussian state-space model) for quarterly US inflation, 1959Q2-2009Q3.

Run it with ``markovppl fit ar_lgssm``; fit your own series with
``--data my.csv --columns inflation --time-column year``.

Model: $x_t = \\phi x_{t-1} + \\eta_t$, $\\eta_t \\sim N(0, \\sigma^2_\\eta)$, started from its stationary law
$x_0 \\sim N(0, \\sigma^2_\\eta / (1 - \\phi^2))$; $y_t = c + x_t + \\varepsilon_t$, $\\varepsilon_t \\sim N(0, \\sigma^2_\\varepsilon)$.
Priors: $\\phi = 2u - 1$ with $u \\sim \\mathrm{Beta}(2, 2)$ (a transformed prior on $(-1, 1)$, so the latent
process is stationary), $c \\sim N(0, 10)$, $\\sigma_\\eta, \\sigma_\\varepsilon \\sim HN(2)$.

Why this series: CPI inflation (``mp.datasets.load_us_inflation``, annualised percent, public domain) is
persistent but noisy from quarter to quarter: its lag-1 and lag-2 autocorrelations are 0.64 and 0.60,
whereas a pure AR(1) would give 0.64 and 0.41. An AR(1) observed with noise (an ARMA(1, 1)) explains
exactly that pattern, so $\\phi$ and the two variances are identified from the data, and the smoothed
state is the persistent ("core") part of inflation. The Nile flow or GNP growth would be weaker choices:
the first is a local level with a shift (and already has ``local_level``), the second shows little persistence.
The latent path is marginalised exactly and drawn afterwards (``latent_posterior``).
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

DATA_COLUMNS = ["inflation"]
TIME_COLUMN = "year"
VAR_NAMES = ["phi", "c", "sigma_eta", "sigma_eps"]


def _ssm(phi, c, sigma_eta, sigma_eps, num_steps=None):
    one = jnp.ones((1, 1))
    stationary_var = sigma_eta**2 / (1.0 - phi**2)
    return mp.LinearGaussianSSM(jnp.zeros(1), stationary_var * one, phi * one, sigma_eta**2 * one, one,
                                sigma_eps**2 * one, emission_offset=jnp.reshape(c, (1,)), num_steps=num_steps)


def model(y=None, num_steps=None):
    phi = numpyro.sample("phi", dist.TransformedDistribution(dist.Beta(2.0, 2.0), dist.transforms.AffineTransform(-1.0, 2.0)))
    c = numpyro.sample("c", dist.Normal(0.0, 10.0))
    sigma_eta = numpyro.sample("sigma_eta", dist.HalfNormal(2.0))
    sigma_eps = numpyro.sample("sigma_eps", dist.HalfNormal(2.0))
    obs = None if y is None else jnp.reshape(y, (-1, 1))  # the SSM observes (T, 1) vectors
    numpyro.sample("y", _ssm(phi, c, sigma_eta, sigma_eps, num_steps if y is None else None), obs=obs)


def load_data():
    data = mp.datasets.load_us_inflation()
    return {"y": data.values, "time": data.time, "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # inflation with the posterior mean of c + x_t (smoothed means averaged over parameter draws) and a 90%
    # band from the exact posterior latent paths, one per draw, so the band includes parameter uncertainty
    post = diagnostics.get_group(idata, "posterior")
    params = [np.asarray(post[k]).reshape(-1) for k in ("phi", "c", "sigma_eta", "sigma_eps")]
    y = jnp.asarray(data["y"])
    obs = jnp.reshape(y, (-1, 1))
    smooth = jax.jit(jax.vmap(lambda p, c, se, so: _ssm(p, c, se, so).smooth(obs).smoothed_means[:, 0] + c))
    mean = np.asarray(smooth(*[jnp.asarray(p, y.dtype) for p in params])).mean(0)
    latent = np.asarray(diagnostics.get_group(idata, "latent_posterior")["y"])
    draws = latent.reshape((-1,) + latent.shape[2:])[..., 0] + params[1][:, None]
    path = os.path.join(out_dir, "smoothed_state.png")
    plot_smoothing_band(data["time"], data["y"], draws, path, mean=mean, ylabel="inflation (% per year)",
                        label="c + x_t", title="US CPI inflation and its persistent component (latent AR(1) plus noise)")
    return [path]
