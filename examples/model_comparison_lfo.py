"""Write a model from scratch and compare two models by leave-future-out (LFO) predictive densities.

Run from the repository root:  python examples/model_comparison_lfo.py

The question: do the earthquake counts need 3 hidden states, or do 2 do as well *for forecasting*?
Each model is a few lines of NumPyro with an ``mp.HMM`` observed site. For dependent data the right
yardstick is leave-future-out: predict y_t from y_0..y_{t-1} only. Exact block-wise LFO is used here:

    for each block [s, s + B):  fit the model to y_0..y_{s-1} with NUTS, then for every t in the block
        log p(y_t | y_{0:t-1}) ~= log mean_draws p(y_t | y_{0:t-1}, theta_draw)

where p(y_t | y_{0:t-1}, theta) is the one-step-ahead predictive density from ``HMM.log_predictive``
(the forward filter runs through the block's own past, the parameters only see data before the block).
Summing over t gives elpd_LFO; the difference between the models comes with a standard error from the
pointwise differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import logsumexp
from numpyro.infer import MCMC, NUTS

import markovppl as mp

from _settings import NUM_SAMPLES, NUM_WARMUP, QUICK


def poisson_hmm(num_states):
    def model(y=None):
        z = numpyro.sample("log_rates_std", dist.TransformedDistribution(
            dist.Normal(0.0, 1.0).expand([num_states]).to_event(1), dist.transforms.OrderedTransform()))
        rates = numpyro.deterministic("rates", 20.0 * jnp.exp(z))
        P = numpyro.sample("P", dist.Dirichlet(jnp.ones((num_states, num_states)) + 5 * jnp.eye(num_states)).to_event(1))
        numpyro.sample("y", mp.HMM(jnp.ones(num_states) / num_states, P, dist.Poisson(rates)), obs=y)

    def predictive(samples, y):
        """log p(y_t | y_{0:t-1}, theta) for every draw: (draws, T)."""
        k = num_states
        one = lambda r, P: mp.HMM(jnp.ones(k) / k, P, dist.Poisson(r)).log_predictive(y)
        return jax.vmap(one)(samples["rates"], samples["P"])

    return model, predictive


def lfo(model, predictive, y, first, block, seed=0):
    """Pointwise LFO log predictive densities for t = first .. T-1 (block-wise exact refits)."""
    out = []
    for start in range(first, len(y), block):
        stop = min(start + block, len(y))
        mcmc = MCMC(NUTS(model), num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed + start), y=y[:start])
        lp = predictive(mcmc.get_samples(), y[:stop])[:, start:stop]  # (draws, block)
        out.append(np.asarray(logsumexp(lp, 0) - np.log(lp.shape[0])))
    return np.concatenate(out)


def main():
    y = jnp.asarray(mp.datasets.load_earthquakes().values)
    first, block = (87, 10) if QUICK else (57, 10)
    scores = {k: lfo(*poisson_hmm(k), y, first, block) for k in (2, 3)}
    for k, s in scores.items():
        print(f"{k} states: elpd_LFO = {s.sum():.2f} over {len(s)} one-step-ahead predictions")
    diff = scores[3] - scores[2]
    print(f"3 states - 2 states: {diff.sum():.2f} (se {np.sqrt(len(diff)) * diff.std(ddof=1):.2f})")


if __name__ == "__main__":
    main()
