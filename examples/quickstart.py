"""Quickstart: a 3-state Poisson hidden Markov model for the annual counts of major earthquakes.

Run from the repository root:  python examples/quickstart.py

1. write the model: parameters are NumPyro sample sites, the hidden chain is an ``mp.HMM`` whose
   ``log_prob`` is the exact evidence (the latent path is marginalised by the backward filter);
2. fit it with NUTS;
3. get ArviZ output with exact posterior draws of the hidden path (forward guiding);
4. summarise, and plot the counts with the posterior probability of each state.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS

import markovppl as mp
from markovppl.diagnostics.plots import plot_state_probabilities

from _settings import NUM_SAMPLES, NUM_WARMUP, OUT_DIR


def model(y=None, num_states=3):
    # ordered standard-normal vector z: the sample site lives in the ordered space, so labels cannot switch
    z = numpyro.sample("log_rates_std", dist.TransformedDistribution(
        dist.Normal(0.0, 1.0).expand([num_states]).to_event(1), dist.transforms.OrderedTransform()))
    rates = numpyro.deterministic("rates", 20.0 * jnp.exp(z))
    P = numpyro.sample("P", dist.Dirichlet(jnp.ones((num_states, num_states)) + 5 * jnp.eye(num_states)).to_event(1))
    numpyro.sample("y", mp.HMM(jnp.ones(num_states) / num_states, P, dist.Poisson(rates)), obs=y)


def main():
    data = mp.datasets.load_earthquakes()
    y = jnp.asarray(data.values)

    mcmc = MCMC(NUTS(model), num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, num_chains=2, chain_method="sequential")
    mcmc.run(jax.random.PRNGKey(0), y=y)
    idata = mp.to_inference_data(mcmc, coords={"time": data.time})
    print(mp.diagnostics.summary(idata, var_names=["rates", "P"]).round(3).to_string())

    # exact posterior draws of the hidden path, one per parameter draw: estimate P(state | data) by counting
    paths = mp.diagnostics.get_group(idata, "latent_posterior")["y"].values.reshape(-1, len(y))
    probs = np.stack([(paths == k).mean(0) for k in range(3)], -1)
    os.makedirs(OUT_DIR, exist_ok=True)
    path = plot_state_probabilities(data.time, data.values, probs, os.path.join(OUT_DIR, "quickstart_states.png"),
                                    ylabel="major earthquakes per year", state_labels=["low", "medium", "high"])
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
