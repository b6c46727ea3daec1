r"""The main job: a 3-state Poisson HMM fitted to the annual counts of major earthquakes.

$$x_0 \sim \pi_0,\quad x_{t+1} \mid x_t \sim P[x_t, \cdot],\quad y_t \mid x_t \sim \mathrm{Poisson}(\lambda_{x_t}),$$

with ordered rates $\lambda_k = 20 e^{z_k}$, $z_0 < z_1 < z_2$ an ordered standard-normal vector (so chains
cannot swap labels), sticky Dirichlet rows for $P$ and a uniform $\pi_0$. NUTS samples the parameters; the hidden path is marginalised
exactly by the backward filter and recovered afterwards by forward guiding.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from . import diagnostics
from .datasets import load_earthquakes
from .diagnostics.plots import plot_state_probabilities
from .families import HMM
from .fit import FitResult, fit_model

__all__ = ["earthquake_model", "load_data", "plots", "run_demo"]


def earthquake_model(y=None, num_states: int = 3, num_steps: int | None = None):
    """NumPyro model: Poisson HMM with ordered rates (see module docstring)."""
    # ordered standard-normal vector z (z_0 < z_1 < ...); rates = 20 exp(z). The sample site lives in the
    # ordered space, so NUTS's unconstraining bijection matches the support and labels cannot switch.
    z = numpyro.sample(
        "log_rates_std",
        dist.TransformedDistribution(dist.Normal(0.0, 1.0).expand([num_states]).to_event(1), dist.transforms.OrderedTransform()),
    )
    rates = numpyro.deterministic("rates", 20.0 * jnp.exp(z))
    P = numpyro.sample("P", dist.Dirichlet(jnp.ones((num_states, num_states)) + 5 * jnp.eye(num_states)).to_event(1))
    steps = num_steps if y is None else None
    hmm = HMM(jnp.ones(num_states) / num_states, P, dist.Poisson(rates), num_steps=steps)
    numpyro.sample("y", hmm, obs=y)


def load_data() -> dict:
    """The bundled earthquake counts as ``{"y", "time", "columns"}``."""
    data = load_earthquakes()
    return {"y": data.values, "time": data.time, "columns": ["count"]}


def plots(idata, data, out_dir) -> list:
    """Counts with the posterior mean state level and the posterior hidden-state probabilities."""
    post = diagnostics.get_group(idata, "posterior")
    rates = np.asarray(post["rates"]).reshape(-1, post["rates"].shape[-1])
    P = np.asarray(post["P"]).reshape((-1,) + post["P"].shape[-2:])
    y = jnp.asarray(data["y"])
    k = rates.shape[-1]
    smooth = jax.jit(jax.vmap(lambda r, P: HMM(jnp.ones(k) / k, P, dist.Poisson(r)).smooth(y).smoothed_probs))
    probs = np.asarray(smooth(rates, P))
    level = np.mean(np.einsum("dtk,dk->dt", probs, rates), 0)
    path = os.path.join(out_dir, "hidden_states.png")
    labels = ["low", "medium", "high"] if k == 3 else None
    plot_state_probabilities(data["time"], data["y"], probs.mean(0), path, state_means=level,
                             ylabel="major earthquakes per year", state_labels=labels,
                             title=f"Earthquake counts and posterior hidden-state probabilities ({k}-state Poisson HMM)")
    return [path]


def run_demo(out_dir: str = "results", *, num_warmup: int = 500, num_samples: int = 500, num_chains: int = 2,
             seed: int = 0, progress_bar: bool = True) -> FitResult:
    """Fit the earthquake model, write InferenceData, summary and plots to ``out_dir``."""
    return fit_model(earthquake_model, load_data(), out_dir, name="earthquakes", var_names=["rates", "P"],
                     plots=plots, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                     seed=seed, progress_bar=progress_bar)
