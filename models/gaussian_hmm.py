"""Gaussian HMM with 2 ordered regimes (recession/expansion) for US real GNP growth, 1951Q2-1984Q4.

Run it with ``markovppl fit gaussian_hmm``; fit your own series with
``--data my.csv --columns growth --time-column year``.

Model: a two-regime Markov-switching mean in the spirit of Hamilton (1989), without his AR(4) terms.
$x_0$ from the stationary law of $P$, $x_{t+1} \\mid x_t \\sim P[x_t, \\cdot]$ with sticky Dirichlet rows,
$y_t \\mid x_t \\sim N(\\mu_{x_t}, \\sigma^2)$ with a common $\\sigma \\sim HN(2)$ and $\\mu_0 < \\mu_1$ an
ordered vector ($\\mu_0 \\sim N(0, 1)$, $\\mu_1 - \\mu_0 \\sim \\mathrm{LogNormal}(0, 1)$; percent per quarter), so
regime 0 is the low-growth (recession) regime in every chain. The ordered vector is the sample site
itself, with support ``ordered_vector``, so NUTS's unconstraining bijection matches it. Hamilton's
maximum-likelihood fit (with AR(4) terms) has regime means -0.36 and 1.16, $p_{00} = 0.75$,
$p_{11} = 0.90$. The regime path is marginalised exactly and drawn afterwards (``latent_posterior``).
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import diagnostics
from markovppl.diagnostics.plots import plot_state_probabilities

DATA_COLUMNS = ["growth"]
TIME_COLUMN = "year"
VAR_NAMES = ["mu", "sigma", "P"]
NUM_STATES = 2


def _hmm(mu, sigma, P, num_steps=None):
    return mp.HMM("stationary", P, dist.Normal(mu, sigma), num_steps=num_steps)


def model(y=None, num_steps=None):
    mu = numpyro.sample("mu", dist.TransformedDistribution(
        dist.Normal(0.0, 1.0).expand([NUM_STATES]).to_event(1), dist.transforms.OrderedTransform()))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2.0))
    P = numpyro.sample("P", dist.Dirichlet(jnp.ones((NUM_STATES, NUM_STATES)) + 4 * jnp.eye(NUM_STATES)).to_event(1))
    numpyro.sample("y", _hmm(mu, sigma, P, num_steps if y is None else None), obs=y)


def load_data():
    data = mp.datasets.load_gnp_growth()
    return {"y": data.values, "time": data.time, "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # growth with the posterior mean regime level and the posterior regime probabilities, averaged over draws
    post = diagnostics.get_group(idata, "posterior")
    mu = np.asarray(post["mu"]).reshape(-1, NUM_STATES)
    sigma = np.asarray(post["sigma"]).reshape(-1)
    P = np.asarray(post["P"]).reshape(-1, NUM_STATES, NUM_STATES)
    y = jnp.asarray(data["y"])
    smooth = jax.jit(jax.vmap(lambda m, s, P: _hmm(m, s, P).smooth(y).smoothed_probs))
    probs = np.asarray(smooth(jnp.asarray(mu, y.dtype), jnp.asarray(sigma, y.dtype), jnp.asarray(P, y.dtype)))
    level = np.mean(np.einsum("dtk,dk->dt", probs, mu), 0)
    path = os.path.join(out_dir, "regimes.png")
    plot_state_probabilities(data["time"], data["y"], probs.mean(0), path, state_means=level,
                             ylabel="real GNP growth (% per quarter)", state_labels=["low growth", "high growth"],
                             title="US real GNP growth and posterior regime probabilities (2-state Gaussian HMM)")
    return [path]
