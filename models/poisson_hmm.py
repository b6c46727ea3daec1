"""Poisson HMM with 3 ordered states for the annual counts of major earthquakes (1900-2006).

Run it with ``markovppl fit models/poisson_hmm.py`` (or ``markovppl fit poisson_hmm``); fit your own
counts with ``--data my.csv --columns count --time-column year``. Copy this file to start a model of
your own: it needs ``model`` and ``load_data``; ``plots``, ``DATA_COLUMNS``, ``TIME_COLUMN`` and
``VAR_NAMES`` are optional.

Model: $x_0$ uniform over 3 states, $x_{t+1} \\mid x_t \\sim P[x_t, \\cdot]$ with sticky Dirichlet rows,
$y_t \\mid x_t \\sim \\mathrm{Poisson}(\\lambda_{x_t})$ with $\\lambda_k = 20 e^{z_k}$ and $z_0 < z_1 < z_2$ an
ordered standard-normal vector, so the states keep their labels across chains. The hidden path is
marginalised exactly by ``mp.HMM`` and recovered afterwards (``latent_posterior`` in the output).
"""

import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

import markovppl as mp
from markovppl import demo

DATA_COLUMNS = ["count"]
TIME_COLUMN = "year"
VAR_NAMES = ["rates", "P"]
NUM_STATES = 3


def model(y=None, num_steps=None):
    z = numpyro.sample("log_rates_std", dist.TransformedDistribution(
        dist.Normal(0.0, 1.0).expand([NUM_STATES]).to_event(1), dist.transforms.OrderedTransform()))
    rates = numpyro.deterministic("rates", 20.0 * jnp.exp(z))
    P = numpyro.sample("P", dist.Dirichlet(jnp.ones((NUM_STATES, NUM_STATES)) + 5 * jnp.eye(NUM_STATES)).to_event(1))
    hmm = mp.HMM(jnp.ones(NUM_STATES) / NUM_STATES, P, dist.Poisson(rates), num_steps=num_steps if y is None else None)
    numpyro.sample("y", hmm, obs=y)


def load_data():
    data = mp.datasets.load_earthquakes()
    return {"y": data.values, "time": data.time, "columns": DATA_COLUMNS}


def plots(idata, data, out_dir):
    # counts, posterior mean state level and posterior state probabilities over time
    return demo.plots(idata, data, out_dir)
