"""Stochastic volatility model for daily GBP/USD log-returns (1997-1999), fitted by particle Gibbs (NUTS + conditional SMC).

Run it with ``markovppl fit stochastic_volatility``; fit your own returns with
``--data my.csv --columns ret`` (percent log-returns, one per row).

Model (Kim, Shephard & Chib 1998; the ``StochVol`` model of the ``particles`` package):
$x_0 \\sim N(\\mu, \\sigma^2 / (1 - \\phi^2))$,
$x_t = \\mu + \\phi (x_{t-1} - \\mu) + \\sigma \\eta_t$, $\\eta_t \\sim N(0, 1)$;
$y_t \\mid x_t \\sim N(0, e^{x_t})$ — $x_t$ is the log-variance of the return on day $t$.
Priors: $\\mu \\sim N(-1, 1)$, $(\\phi + 1)/2 \\sim \\mathrm{Beta}(20, 1.5)$ (persistent volatility),
$\\sigma \\sim HN(0.5)$. The likelihood has no closed form: the log-variance path is a sample site moved
by conditional SMC with backward sampling (bootstrap proposal), the parameters by NUTS given the path
(``PARTICLE_GIBBS``). Data: ``markovppl.datasets.load_gbp_usd()`` (750 returns).
"""

import os

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import diagnostics
from markovppl.particles import StateSpaceModel

DATA_COLUMNS = ["ret"]
VAR_NAMES = ["mu", "phi", "sigma"]
PARTICLE_GIBBS = {"site": "x", "num_particles": 64}


def sv_ssm(mu, phi, sigma):
    """The stochastic volatility model as a StateSpaceModel (vectorised over particles)."""
    return StateSpaceModel(dist.Normal(mu, sigma / jnp.sqrt(1 - phi**2)),
                           lambda t, x: dist.Normal(mu + phi * (x - mu), sigma),
                           lambda t, x: dist.Normal(0.0, jnp.exp(x / 2)))


def model(y=None, num_steps=100):
    mu = numpyro.sample("mu", dist.Normal(-1.0, 1.0))
    phi_raw = numpyro.sample("phi_raw", dist.Beta(20.0, 1.5))
    phi = numpyro.deterministic("phi", 2 * phi_raw - 1)
    sigma = numpyro.sample("sigma", dist.HalfNormal(0.5))
    ssm = sv_ssm(mu, phi, sigma)
    x = numpyro.sample("x", ssm.path_prior(num_steps if y is None else jnp.shape(y)[0]))
    numpyro.sample("y", ssm.observation_law(x), obs=y)


def load_data():
    data = mp.datasets.load_gbp_usd()
    return {"y": data.values, "time": data.time, "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # returns with the posterior of the daily volatility exp(x_t / 2): mean and 90% band over the path
    # draws (one per parameter draw, so the band includes parameter uncertainty)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latent = np.asarray(diagnostics.get_group(idata, "latent_posterior")["x"])
    vol = np.exp(latent.reshape((-1,) + latent.shape[2:]) / 2)
    lo, hi = np.quantile(vol, [0.05, 0.95], axis=0)
    t = np.asarray(data["time"])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.plot(t, np.abs(np.asarray(data["y"])), ".", color="0.6", ms=3, label="|return|")
    ax.fill_between(t, lo, hi, alpha=0.3, label="90% band of exp(x_t / 2)")
    ax.plot(t, vol.mean(0), lw=1.5, label="posterior mean volatility")
    ax.set_ylabel("percent per day")
    ax.set_title("GBP/USD: daily volatility by particle Gibbs (stochastic volatility model)")
    ax.legend(loc="upper right", frameon=False)
    fig.tight_layout()
    path = os.path.join(out_dir, "volatility.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
